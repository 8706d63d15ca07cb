"""On-demand feature groups: a query over a connector, computed when read.

Creating one runs the query's ``LIMIT 0`` form at the source (columns and
types, asked of the source itself) and, for sources the engine reaches
itself, once more in the engine, before anything is written to the catalog.

Reading one (:func:`source`, the ``on_demand`` kind of
:func:`fsql.bind.sources.group_source`, which every reader uses: plain SQL,
SELECT FEATURES, training datasets) gives a ClickHouse relation:

- *pushdown* (PostgreSQL, MySQL/MariaDB, files): each source table in the
  query becomes a ClickHouse table function (``postgresql()``, ``mysql()``,
  ``file()``), so the query, the filters and the as-of join run in one
  engine and the engine sends the filters it can to the source;
- *fetch* (ClickHouse server, Trino): the query runs at the source through
  the connector's client, the Arrow result is loaded into a temporary engine
  table, and the relation reads that. The fetch runs when a statement that
  reads the table runs (the engine's ``before_run`` hook), so EXPLAIN does
  not fetch.

Errors a source raises while the engine reads it (pushdown) are replaced,
through the engine's ``translate_error`` hook, by errors naming the
connector and source objects, with the source's SQLSTATE where known.

Either way the relation is ``SELECT CAST(q.c AS T) AS c, ... FROM (query) AS
q`` with the catalog's types, and rows whose primary key or event time is
NULL are dropped (as a cached feature group never holds them).

Filters are copied next to the table functions by
:func:`fsql.bind.pushdown.push_down`; ``connector.table`` in plain SQL is
:mod:`fsql.bind.connector_tables`; creating connectors and on-demand groups
is :mod:`fsql.statements.sources`.

Secrets: a table function's password argument is the query parameter
``{fsql_secret_N:String}``, set on the engine session, never text in SQL.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from fsql.bind.sources import group_source_kind
from fsql.catalog import Catalog, FeatureGroup
from fsql.catalog import connectors as catalog_connectors
from fsql.connectors.registry import SourceColumn, SourceConnector, make_connector
from fsql.errors import (
    DatatypeMismatch,
    FeatureNotSupported,
    FsqlError,
    InvalidParameter,
    UndefinedColumn,
)
from fsql.store.conform import compatible
from fsql.store.paths import check_endpoint, check_readable
from fsql.types import clickhouse_type

if TYPE_CHECKING:
    from fsql.connectors.engine import Engine
    from fsql.store.core import StoreCore

DIALECT = "clickhouse"
META = "fsql_on_demand"
TEMP_DATABASE = "fsqltmp_on_demand"  # not fsql_<project>: no project is named so
ALIAS = "fsql_q"


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


# connectors ------------------------------------------------------------------


def open_connector(catalog: Catalog, project: str, name: str) -> SourceConnector:
    record = catalog_connectors.get_connector(catalog, project, name)
    return make_connector(record.name, record.type, record.options, connector_id=record.id)


# creation ----------------------------------------------------------------------


def parse_query(query: str | exp.Expression) -> exp.Query:
    """The query in PostgreSQL syntax, unquoted names folded to lower case
    (as PostgreSQL does) and every name quoted."""
    from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
    from sqlglot.optimizer.qualify_columns import quote_identifiers

    q = _parse_query(query)
    q = normalize_identifiers(q.copy(), dialect="postgres")
    out = quote_identifiers(q, dialect="postgres")
    assert isinstance(out, exp.Query)
    return out


def _parse_query(query: str | exp.Expression) -> exp.Query:
    if isinstance(query, exp.Query):
        return query
    if isinstance(query, exp.Expression):
        raise InvalidParameter("an on-demand feature group needs a SELECT query")
    from fsql.sql.dialect import parse

    statements = parse(query)
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise InvalidParameter(
            "an on-demand feature group needs exactly one SELECT query",
            sqlstate="42601",
        )
    return statements[0]


# reading -------------------------------------------------------------------------


@dataclass
class Binding:
    """What :func:`source` attached to the relation it returns (``meta``)."""

    fg: str
    connector: str
    connector_type: str
    dialect: str
    mode: str  # 'pushdown' | 'fetch'
    source_query: str = ""  # fetch mode: the query the client ran at the source


def source(
    engine: Engine,
    catalog: Catalog,
    fg: FeatureGroup,
    *,
    system_time_us: int | None = None,
    since_us: int | None = None,
    hidden: bool = False,
    verify: bool = True,
) -> exp.Select:
    """The relation that reads an on-demand feature group in the engine.

    The source is read live: an on-demand feature group has no commits, so
    ``system_time_us`` does not change what it returns. ``since_us``
    (incremental reads) is not supported. ``verify`` re-describes the query
    at the source first, so a table or column that vanished since creation
    is reported by name rather than as an engine error.
    """
    if since_us is not None:
        raise FeatureNotSupported(
            f'feature group "{fg.name}" is on-demand: it has no commits to read changes from',
            hint="FOR SYSTEM_TIME BETWEEN works on cached feature groups.",
        )
    assert fg.connector and fg.query is not None
    conn = open_connector(catalog, fg.project, fg.connector)
    query = parse_query(fg.query)
    described = conn.describe(query, engine) if verify else None
    if described is not None:
        _verify(conn, fg, query, described)
    if pushdown_mode(conn, query):
        secret = set_secret(engine, conn)
        inner: exp.Expr = _bind_tables(conn, query, secret)
        mode = "pushdown"
    else:
        columns = described or conn.describe(query, engine)
        inner = exp.select(exp.Star()).from_(_temp_relation(engine, conn, fg, query, columns))
        mode = "fetch"
    outer_cols: list[exp.Expr] = []
    not_null = set(fg.primary_key) | ({fg.event_time} if fg.event_time else set())
    for f in fg.features:
        ch = clickhouse_type(f.ftype, nullable=f.name not in not_null)
        value: exp.Expr = exp.column(_ident(f.name), table=_ident(ALIAS))
        if f.type == "timestamp" and conn.type_name == "files":
            # a CAST keeps a zone the source attached (Parquet says UTC); a
            # naive timestamp is the same instant with no zone
            value = exp.func(
                "fromUnixTimestamp64Micro",
                exp.func(
                    "toUnixTimestamp64Micro", exp.func("toDateTime64", value, exp.Literal.number(6))
                ),
            )
        outer_cols.append(exp.alias_(exp.Cast(this=value, to=ch), _ident(f.name)))
    if hidden:
        outer_cols.append(
            exp.alias_(exp.func("toUInt64", exp.Literal.number(0)), _ident("_commit_id"))
        )
        outer_cols.append(
            exp.alias_(
                exp.func("now64", exp.Literal.number(6), exp.Literal.string("UTC")),
                _ident("_commit_time"),
            )
        )
    assert isinstance(inner, exp.Query)
    outer = exp.select(*outer_cols).from_(inner.subquery(_ident(ALIAS)))
    for name in sorted(not_null):
        outer = outer.where(
            exp.Not(
                this=exp.Is(
                    this=exp.column(_ident(name), table=_ident(ALIAS)), expression=exp.Null()
                )
            )
        )
    outer.meta[META] = Binding(
        fg.name,
        conn.name,
        conn.type_name,
        conn.dialect,
        mode,
        conn.source_sql(query) if mode == "fetch" else "",
    )
    return outer


# Nodes whose meaning is the same in ClickHouse and in the source. A query
# made only of these runs in the engine over table functions (pushdown);
# anything else (functions, division, subqueries, window functions, casts to
# types the engine maps differently) runs at the source (fetch), so an
# on-demand feature group always means what its query means at the source.
_SAME_MEANING = (
    exp.Select, exp.From, exp.Where, exp.Join, exp.Table, exp.TableAlias, exp.Identifier,
    exp.Column, exp.Alias, exp.Star, exp.Literal, exp.Boolean, exp.Null, exp.Paren,
    exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE,
    exp.Is, exp.In, exp.Between, exp.Add, exp.Sub, exp.Mul, exp.Neg, exp.Tuple,
)  # fmt: skip


def pushdown_mode(conn: SourceConnector, query: exp.Query) -> bool:
    """Whether the engine reads the source itself for this query."""
    if not conn.pushdown:
        return False
    if conn.type_name == "files":
        return True  # the engine is the only reader of files
    for node in query.walk():
        if not isinstance(node, _SAME_MEANING):
            return False
        if isinstance(node, exp.Join) and node.args.get("kind"):
            return False  # SEMI/ANTI/ASOF joins
        if isinstance(node, exp.In) and node.args.get("query"):
            return False
    return True


def _verify(
    conn: SourceConnector, fg: FeatureGroup, query: exp.Query, described: Sequence[SourceColumn]
) -> None:
    from fsql.connectors.registry import source_objects

    objects = ", ".join(source_objects(query)) or None
    found = {c.name: c for c in described}
    missing = [f.name for f in fg.features if f.name not in found]
    if missing:
        raise UndefinedColumn(
            f'on-demand feature group "{fg.name}": {conn.label(objects)} no longer returns '
            "column " + ", ".join(missing),
            hint="The source changed since the feature group was created; "
            "create a new version with a query that matches it.",
        )
    for f in fg.features:
        got = found[f.name].ftype
        if got.name != f.type and not compatible(got.arrow, f.ftype.arrow):
            raise DatatypeMismatch(
                f'on-demand feature group "{fg.name}": {conn.label(objects)} column '
                f'"{f.name}" is now {found[f.name].source_type}, the feature group has {f.type}',
                hint="Create a new version, or CAST the column in the query.",
            )


def set_secret(engine: Engine, conn: SourceConnector) -> exp.Expression:
    """Set the connector's secret as a session query parameter; return the
    placeholder that reads it. Registers the connector with the engine's
    error hook, so an error the source raises while the engine reads it is
    reported by connector and source object."""
    placeholder = conn.engine_secret(engine)
    _hooks(engine).connectors[conn.id] = conn
    return placeholder


# engine hooks: source errors in pushdown reads, fetches only when run ---------

_SECRET_RE = re.compile(r"\{\s*fsql_secret_(\d+)\s*:")


class _EngineHooks:
    """What this module keeps per engine object (an attribute, so it ends
    with the engine): the connectors whose table functions the engine may
    run (by id, as the secret parameter names them) and the fetch-mode
    loads not run yet (temporary table -> loader)."""

    def __init__(self, engine: Engine) -> None:
        self.connectors: dict[int, SourceConnector] = {}
        self.pending: dict[str, Callable[[], None]] = {}
        self.tables: dict[int, list[str]] = {}  # fg id -> its temporary tables
        self.temp_ready = False  # the temporary database was set up
        self.lock = threading.RLock()
        if hasattr(engine, "translate_error"):
            engine.translate_error = self.translate_error  # type: ignore[attr-defined]
        self.lazy = hasattr(engine, "before_run")
        if self.lazy:
            engine.before_run = self.before_run  # type: ignore[attr-defined]

    def before_run(self, sql: str) -> None:
        if not self.pending:
            return
        with self.lock:
            due = [n for n in self.pending if f'"{TEMP_DATABASE}"."{n}"' in sql]
            loads = [self.pending.pop(n) for n in due]
        for load in loads:
            load()

    def translate_error(self, sql: str, error: FsqlError) -> FsqlError:
        """An engine error while reading pushed-down sources: when the source
        raised it, the same error naming the connector and source objects
        (with the source's SQLSTATE where recoverable), without the engine
        SQL."""
        from fsql.connectors.registry import classify_engine_error, is_source_error

        ids = [int(i) for i in dict.fromkeys(_SECRET_RE.findall(sql))]
        involved = [self.connectors[i] for i in ids if i in self.connectors]
        if not involved or not is_source_error(error.message):
            return error
        low = error.message.lower()
        kind = (
            "mysql" if "mysql" in low else "postgres" if "pqxx" in low or "postgres" in low else ""
        )
        matching = [c for c in involved if c.type_name == kind] or involved
        objects = _engine_source_objects(sql)
        conn = matching[0]
        if len(matching) > 1:
            # which of them failed the engine does not say: name them all
            names = ", ".join(f'"{c.name}"' for c in matching)
            found = classify_engine_error(conn, error.message, "")
            found.message = found.message.replace(conn.label(), f"one of connectors {names}", 1)
            return found
        return classify_engine_error(conn, error.message, ", ".join(objects.get(conn.id, [])))


def _hooks(engine: Engine) -> _EngineHooks:
    with _temp_lock:
        found = getattr(engine, _HOOKS_ATTR, None)
        if found is None:
            found = _EngineHooks(engine)
            setattr(engine, _HOOKS_ATTR, found)
        return found  # type: ignore[no-any-return]


def _engine_source_objects(sql: str) -> dict[int, list[str]]:
    """connector id -> the source tables its table functions read in ``sql``
    (``postgresql(host, db, table, user, {fsql_secret_N: String}, schema)``,
    ``mysql(host, db, table, user, {fsql_secret_N: String})``)."""
    import sqlglot

    out: dict[int, list[str]] = {}
    try:
        tree = sqlglot.parse_one(sql, read=DIALECT)
    except Exception:  # the names are a courtesy; the error stands without them
        return out
    for fn in tree.find_all(exp.Anonymous):
        name = str(fn.this).lower()
        args = fn.expressions
        if name not in ("postgresql", "mysql") or len(args) < 5:
            continue
        secret = args[4]
        m = _SECRET_RE.search(secret.sql(DIALECT)) if isinstance(secret, exp.Placeholder) else None
        if m is None or not isinstance(args[2], exp.Literal):
            continue
        table = args[2].this
        names = out.setdefault(int(m.group(1)), [])
        if table not in names:
            names.append(table)
    return out


def _bind_tables(conn: SourceConnector, query: exp.Query, secret: exp.Expression) -> exp.Query:
    bound = query.copy()
    ctes = {c.alias_or_name for c in bound.find_all(exp.CTE)}
    for table in list(bound.find_all(exp.Table)):
        if not table.name or (table.name in ctes and not table.db):
            continue
        fn = conn.table_function(table, secret)
        assert fn is not None
        fn.meta["fsql_source_table"] = exp.Table(
            this=table.this.copy(), db=table.args.get("db") and table.args["db"].copy()
        )
        alias = table.alias or table.name
        table.replace(
            exp.Table(this=fn, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))
        )
    return bound


# fetch mode: temporary engine tables -----------------------------------------

_temp_lock = threading.Lock()
_temp_counter = itertools.count(1)
_HOOKS_ATTR = "_fsql_on_demand"
KEEP_FETCHES = 3  # per group: a statement may read a group more than once


def _temp_relation(
    engine: Engine,
    conn: SourceConnector,
    fg: FeatureGroup,
    query: exp.Query,
    columns: Sequence[SourceColumn],
) -> exp.Table:
    """The temporary engine table a fetch-mode read loads. With an engine
    that runs ``before_run`` hooks, the fetch happens only when a statement
    that reads the table runs (so EXPLAIN, which runs nothing, describes the
    source query without fetching it); otherwise it happens now."""
    hooks = _hooks(engine)
    db = _ident(TEMP_DATABASE)
    with hooks.lock:
        if not hooks.temp_ready:
            # leftovers of an earlier process (Memory tables come back empty)
            engine.execute(
                exp.Drop(tables=[exp.Table(this=db)], kind="DATABASE", exists=True).sql(DIALECT)
            )
            engine.execute(
                exp.Create(this=exp.Table(this=db), kind="DATABASE", exists=True).sql(DIALECT)
            )
            hooks.temp_ready = True
        name = f"fg_{fg.id}_{next(_temp_counter)}"
        older = hooks.tables.setdefault(fg.id, [])
        while len(older) > KEEP_FETCHES:
            stale = older.pop(0)
            if hooks.pending.pop(stale, None) is None:  # loaded: drop it
                engine.execute(
                    exp.Drop(
                        tables=[exp.Table(this=_ident(stale), db=db)], kind="TABLE", exists=True
                    ).sql(DIALECT)
                )
        older.append(name)
    target = exp.Table(this=_ident(name), db=db)

    def load() -> None:
        try:
            data = conn.fetch(query, columns)
        except DatatypeMismatch as e:
            raise DatatypeMismatch(
                f'on-demand feature group "{fg.name}": {conn.label()}: {e.message}', hint=e.hint
            ) from None
        _load_temp(engine, target, columns, data)

    if hooks.lazy:
        with hooks.lock:
            hooks.pending[name] = load
    else:
        load()
    return target


def _load_temp(
    engine: Engine, target: exp.Table, columns: Sequence[SourceColumn], data: pa.Table
) -> None:
    defs = [
        exp.ColumnDef(this=_ident(c.name), kind=clickhouse_type(c.ftype, nullable=True))
        for c in columns
    ]
    create = exp.Create(
        this=exp.Schema(this=target, expressions=defs),
        kind="TABLE",
        properties=exp.Properties(expressions=[exp.EngineProperty(this=exp.var("Memory"))]),
    )
    engine.execute(create.sql(DIALECT))
    arrays = []
    for c in columns:
        col = data.column(c.name) if c.name in data.column_names else pa.nulls(data.num_rows)
        try:
            arrays.append(col.cast(c.ftype.arrow))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            arrays.append(col)
    if data.num_rows:
        engine.insert(target, pa.Table.from_arrays(arrays, names=[c.name for c in columns]))


def binding_of(node: exp.Expression) -> Binding | None:
    found = node.meta.get(META) if node.meta else None
    return found if isinstance(found, Binding) else None


def check_access(store: StoreCore, conn: SourceConnector) -> None:
    """A files connector reads only within the store's read roots, and
    reaches only its allowed endpoints (:mod:`fsql.store.paths`)."""
    if conn.type_name != "files":
        return
    path = conn.options.get("path")
    if path:
        check_readable(store.read_roots, path)
    for key in ("url", "endpoint"):
        if conn.options.get(key):
            check_endpoint(store.endpoints, conn.options[key], f"connector {conn.name}")


@group_source_kind("on_demand")
def _on_demand_source(
    store: StoreCore,
    fg: FeatureGroup,
    *,
    system_time_us: int | None = None,
    since_us: int | None = None,
    hidden: bool = False,
) -> exp.Select:
    assert fg.connector
    check_access(store, open_connector(store.catalog, fg.project, fg.connector))
    return source(
        store.engine,
        store.catalog,
        fg,
        system_time_us=system_time_us,
        since_us=since_us,
        hidden=hidden,
    )
