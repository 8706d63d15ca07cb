"""Plain SQL over feature groups: feature groups (and every other relation
kind) are tables; the statement is checked by PostgreSQL's name rules,
bound, pushed down and run in the engine as it is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from fsql.bind.binder import bind
from fsql.bind.confine import check_statement, with_settings
from fsql.bind.names import check_columns, mark_integer_division
from fsql.bind.pushdown import push_down
from fsql.errors import SQLSyntaxError, UndefinedColumn
from fsql.sql.dialect import bare_features_from
from fsql.store.offline import COMMIT_ID, COMMIT_TIME, DIALECT
from fsql.tables import restore_feature_types

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


def run_plain(store: StoreCore, statement: exp.Expr) -> pa.Table:
    """Plain SQL: feature groups are tables (``fg`` latest, ``fg_vN``).
    Only queries run here; every other statement kind has its executor."""
    check_statement(statement)
    groups = _groups_named(store, statement)
    relations = _relations(groups)
    try:
        check_columns(statement, relations)
    except UndefinedColumn as e:
        at = bare_features_from(statement)
        if at is not None and e.message.lower() == 'column "features" does not exist':
            raise SQLSyntaxError(
                "SELECT FEATURES names no feature",
                position=at,
                hint="SELECT FEATURES f1, f2 FROM spine AS OF spine.ts",
            ) from None
        raise
    mark_integer_division(statement, relations)
    rewritten = with_settings(store, push_down(bind(store, postgres_column_names(statement))))
    result = store.engine.query(rewritten.sql(DIALECT), rewritten.meta.get("fsql_inputs", ()))
    return restore_feature_types(result, groups, check_utf8=True)


_HIDDEN = {COMMIT_ID: "bigint", COMMIT_TIME: "timestamptz"}


def _relations(groups: list[Any]) -> dict[str, dict[str, str]]:
    """Table name -> column -> PostgreSQL type, for plain SQL name checks and
    integer division: ``fg`` is the latest version, ``fg_vN`` each one (with
    the hidden commit columns)."""
    out: dict[str, dict[str, str]] = {}
    for fg in sorted(groups, key=lambda g: g.version):
        cols = {f.name: f.type for f in fg.features} | _HIDDEN
        out[fg.name] = cols
        out[fg.qualified_name] = cols
    return out


def _groups_named(store: StoreCore, statement: exp.Expr) -> list[Any]:
    """The feature groups a plain statement names as tables (``fg``, ``fg_vN``)."""
    names = {t.name for t in statement.find_all(exp.Table) if t.name and not t.db}
    if not names:
        return []
    return [fg for fg in store.feature_groups() if fg.name in names or fg.qualified_name in names]


def postgres_column_names(statement: exp.Expr) -> exp.Expr:
    """Name unnamed result columns as PostgreSQL does (``count(*)`` is
    ``count``, a constant ``?column?``), not as ClickHouse would (``COUNT()``),
    so clients that address columns by name see what they expect."""
    select = statement if isinstance(statement, exp.Select) else None
    if select is None and isinstance(statement, exp.Union):
        left = statement.left
        select = left if isinstance(left, exp.Select) else None
    if select is None:
        return statement
    taken = {e.alias_or_name for e in select.expressions if isinstance(e, (exp.Alias, exp.Column))}
    named = []
    for e in select.expressions:
        name = None if isinstance(e, (exp.Alias, exp.Column, exp.Star)) else _pg_name(e)
        if name is not None and name not in taken:
            taken.add(name)
            e = exp.Alias(this=e, alias=exp.to_identifier(name, quoted=True))
        named.append(e)
    select.set("expressions", named)
    return statement


def _pg_name(e: exp.Expr) -> str | None:
    if isinstance(e, (exp.Window, exp.Filter)):  # rank() OVER (...) is "rank"
        return _pg_name(e.this)
    if isinstance(e, exp.Case):
        return "case"
    if isinstance(e, exp.Cast):
        inner = e.this
        return inner.name if isinstance(inner, exp.Column) else e.to.sql(dialect="postgres").lower()
    if isinstance(e, exp.Func):
        if isinstance(e, exp.Anonymous):
            return str(e.this).lower()
        # the name PostgreSQL spells it with (string_agg, not group_concat)
        spelled = e.sql(dialect="postgres").split("(", 1)[0].strip()
        return (spelled if spelled.replace("_", "").isalnum() else e.sql_name()).lower()
    return "?column?"
