"""Run statement text against a store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from fsql.catalog import FeatureGroup
from fsql.errors import (
    FeatureNotSupported,
    SQLSyntaxError,
    UndefinedColumn,
    UndefinedObject,
    did_you_mean,
    position_of,
)
from fsql.names import check_columns, mark_integer_division
from fsql.offline import COMMIT_ID, COMMIT_TIME, DIALECT, subquery
from fsql.on_demand import bind_connector_table, push_down
from fsql.params import bind
from fsql.sql.dialect import bare_features_from, parse
from fsql.statements import executor_for
from fsql.tables import restore_feature_types
from fsql.training.dataset import bind_training_dataset

if TYPE_CHECKING:
    from fsql.store import Store


def run(store: Store, text: str, params: Sequence[Any] | None = None) -> pa.Table:
    """Run every statement in ``text``; return the last one's result.
    ``params`` bind ``$1, $2, ...``."""
    online_sql = getattr(store, "online_sql", None)  # fsql.online: cached key lookups
    if online_sql is not None:
        found = online_sql(text, params)
        if found is not None:
            return found
    result = pa.table({})
    for statement in parse(text):
        if params:
            statement = bind(statement, params)
        result = run_statement(store, statement)
    return result


def run_statement(store: Store, statement: exp.Expr) -> pa.Table:
    executor = executor_for(statement)
    if executor is not None:
        return executor(store, statement)
    return run_plain(store, statement)


def run_plain(store: Store, statement: exp.Expr) -> pa.Table:
    """Plain SQL: feature groups are tables (``fg`` latest, ``fg_vN``)."""
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
    rewritten = push_down(bind_feature_groups(store, postgres_column_names(statement)))
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


def _groups_named(store: Store, statement: exp.Expr) -> list[Any]:
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


def bind_feature_groups(
    store: Store, statement: exp.Expr, *, system_time_us: int | None = None
) -> exp.Expr:
    """Replace feature-group tables by their relations. ``system_time_us``
    pins tables without their own ``FOR SYSTEM_TIME`` to that system time."""
    statement = statement.copy()
    ctes = {c.alias_or_name for c in statement.find_all(exp.CTE)}
    fgs = store.feature_groups()
    names = {fg.name for fg in fgs}
    by_version = {fg.qualified_name: fg for fg in fgs}
    latest = {fg.name: fg for fg in fgs}  # sorted by version: last wins
    for table in list(statement.find_all(exp.Table)):
        if table.db and table.name:
            bind_connector_table(store, table)  # connector.table: read at the source
            continue
        if table.name in ctes or not table.name:
            continue
        fg = latest.get(table.name) or by_version.get(table.name)
        if fg is None and bind_training_dataset(store, statement, table):
            continue  # a training dataset: its files, as an Arrow input
        if fg is None:
            raise UndefinedObject(
                f'relation "{table.name}" does not exist',
                position=position_of(table),
                hint=did_you_mean(table.name, sorted(names | set(by_version))),
            )
        alias = table.alias or table.name
        table.replace(subquery(_versioned_source(store, fg, table, system_time_us), alias))
    return statement


def _versioned_source(
    store: Store, fg: FeatureGroup, table: exp.Table, system_time_us: int | None = None
) -> exp.Expr:
    """``fg FOR SYSTEM_TIME AS OF t`` is the state at t; ``BETWEEN t1 AND t2``
    the rows committed in (t1, t2], with their commit id and time."""
    from fsql.plan import evaluate_time

    version = table.args.get("version")
    if version is None:
        return store.offline.source(fg, system_time_us=system_time_us)
    kind = str(version.args.get("kind") or "").upper()
    if kind == "AS OF":
        return store.offline.source(fg, system_time_us=evaluate_time(store, version.expression))
    if kind in ("BETWEEN", "FROM"):
        bounds = version.expression
        low, high = bounds.expressions if isinstance(bounds, exp.Tuple) else (bounds, None)
        return store.offline.source(
            fg,
            since_us=evaluate_time(store, low),
            system_time_us=evaluate_time(store, high) if high is not None else None,
            hidden=True,
        )
    raise FeatureNotSupported(f"FOR SYSTEM_TIME {kind} is not supported")
