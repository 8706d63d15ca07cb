"""Plain SQL over feature groups: feature groups (and every other relation
kind) are tables; the statement is checked by PostgreSQL's name rules,
bound, pushed down and run in the engine as it is."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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


# rows per engine batch asked for when a result streams (chDB hands out whole
# blocks, so batches hold about 65k rows)
STREAM_BATCH_ROWS = 32768


def run_plain(store: StoreCore, statement: exp.Expr) -> pa.Table:
    """Plain SQL: feature groups are tables (``fg`` latest, ``fg_vN``).
    Only queries run here; every other statement kind has its executor."""
    rewritten, groups = prepare_plain(store, statement)
    result = store.engine.query(rewritten.sql(DIALECT), rewritten.meta.get("fsql_inputs", ()))
    return restore_feature_types(result, groups, check_utf8=True)


def stream_plain(
    store: StoreCore, statement: exp.Expr, batch_rows: int = STREAM_BATCH_ROWS
) -> pa.RecordBatchReader:
    """:func:`run_plain` as a stream of record batches read from the engine
    as the client reads them (the same checks, tree and types). A query
    with Arrow inputs runs materialized."""
    rewritten, groups = prepare_plain(store, statement)
    sql, inputs = rewritten.sql(DIALECT), rewritten.meta.get("fsql_inputs", ())
    if inputs:
        result = store.engine.query(sql, inputs)
        return table_reader(restore_feature_types(result, groups, check_utf8=True))
    return restore_batches(store.engine.stream(sql, batch_rows), groups, check_utf8=True)


def prepare_plain(store: StoreCore, statement: exp.Expr) -> tuple[exp.Expr, list[Any]]:
    """What every plain query goes through before it runs, materialized or
    streamed: the statement kind, PostgreSQL's name rules, integer
    division, then bound, pushed down and with the engine settings
    (:mod:`fsql.bind.confine`). Returns that tree and the feature groups
    the statement names."""
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
    return rewritten, groups


def table_reader(table: pa.Table) -> pa.RecordBatchReader:
    """A materialized result read as a stream."""
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())


def restore_batches(
    reader: pa.RecordBatchReader,
    groups: Iterable[Any],
    *,
    binary: Iterable[str] = (),
    check_utf8: bool = False,
) -> pa.RecordBatchReader:
    """:func:`restore_feature_types` batch by batch, with the types and
    values it gives the whole table (a value that fails the UTF-8 check
    fails the stream at its batch). One case needs every value first: with
    ``check_utf8`` and a bytea feature read, a text column holding bytes
    that are not UTF-8 becomes bytea, so such a result is read whole."""
    groups, binary = list(groups), list(binary)
    if check_utf8 and _text_may_become_bytea(reader.schema, groups, binary):
        table = restore_feature_types(reader.read_all(), groups, binary=binary, check_utf8=True)
        return table_reader(table)
    empty = reader.schema.empty_table()
    schema = restore_feature_types(empty, groups, binary=binary, check_utf8=check_utf8).schema
    if schema.equals(reader.schema, check_metadata=True) and not check_utf8:
        return reader  # nothing to restore

    def batches() -> Iterator[pa.RecordBatch]:
        for b in reader:
            table = pa.Table.from_batches([b])
            yield from restore_feature_types(
                table, groups, binary=binary, check_utf8=check_utf8
            ).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


def _text_may_become_bytea(schema: pa.Schema, groups: list[Any], binary: list[str]) -> bool:
    """Whether :func:`restore_feature_types` with ``check_utf8`` decides a
    column's type by its values: a text column beside a bytea feature (the
    same names as it reads: bytea features, ``binary``, json features)."""
    bytea = {f.name for fg in groups for f in fg.features if f.type == "bytea"} | set(binary)
    if not bytea:
        return False
    json = {f.name for fg in groups for f in fg.features if f.type in ("json", "jsonb")}
    return any(
        (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
        and f.name not in bytea
        and f.name not in json
        for f in schema
    )


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
