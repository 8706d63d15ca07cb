"""On-demand feature groups: a query over a connector, computed when read.

Creating one runs the query's ``LIMIT 0`` form at the source (columns and
types, asked of the source itself) and, for sources the engine reaches
itself, once more in the engine, before anything is written to the catalog.

Reading one (:func:`source`, called by ``OfflineStore.source`` for every
reader: plain SQL, SELECT FEATURES, training datasets) gives a ClickHouse
relation:

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

Filters: ClickHouse sends a WHERE to the source only when it sits directly
on the table function, not when it is outside a subquery. :func:`push_down`
copies simple conjuncts over an on-demand relation (comparisons, IN lists,
IS NULL, BETWEEN on plain source columns) into the query next to the table
function; the original conjunct stays where it was, so the result cannot
change. :func:`explain_sources` shows, per on-demand relation, the query the
source receives.

Secrets: a table function's password argument is the query parameter
``{fsql_secret_N:String}``, set on the engine session, never text in SQL.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from fsql.catalog import Catalog, Feature, FeatureGroup
from fsql.catalog import connectors as catalog_connectors
from fsql.conform import compatible
from fsql.connectors.registry import SourceColumn, SourceConnector, make_connector
from fsql.errors import (
    DatatypeMismatch,
    FeatureNotSupported,
    FsqlError,
    InvalidParameter,
    UndefinedColumn,
)
from fsql.sql.trees import conjuncts
from fsql.types import clickhouse_type

if TYPE_CHECKING:
    from fsql.connectors.engine import Engine
    from fsql.store import Store

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


def create_connector(
    store: Store,
    name: str,
    type: str,
    options: Mapping[str, str],
    *,
    description: str = "",
    check: bool = True,
) -> catalog_connectors.Connector:
    """Validate the options, reach the source, then register the connector."""
    _check_name(name, "connector")
    connector = make_connector(name, type, options)
    if check:
        connector.check(store.engine)
    stored = {k: v for k, v in connector.options.items()}
    return catalog_connectors.create_connector(
        store.catalog,
        project=store.project,
        name=name,
        type=connector.type_name,
        options=stored,
        description=description,
    )


def alter_connector(
    store: Store,
    name: str,
    options: Mapping[str, str],
    *,
    description: str | None = None,
    check: bool = True,
) -> catalog_connectors.Connector:
    """Merge ``options`` into a connector's (an empty value removes one),
    validate, reach the source, then store. A failed check changes nothing."""
    record = catalog_connectors.get_connector(store.catalog, store.project, name)
    merged = dict(record.options)
    for key, value in options.items():
        key = key.lower()
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
        if value and key in ("password_env", "password_file"):
            # one secret reference replaces the other
            merged.pop("password_file" if key == "password_env" else "password_env", None)
    connector = make_connector(name, record.type, merged, connector_id=record.id)
    if check:
        connector.check(store.engine)
    return catalog_connectors.update_connector(
        store.catalog, record, options=dict(connector.options), description=description
    )


def describe_connector(record: catalog_connectors.Connector) -> dict[str, Any]:
    return {
        "name": record.name,
        "type": record.type,
        "options": dict(record.options),
        "description": record.description,
    }


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


def create_feature_group(
    store: Store,
    name: str,
    *,
    connector: str,
    query: str | exp.Expression,
    primary_key: str | Sequence[str],
    event_time: str | None = None,
    description: str = "",
    features: Mapping[str, str] | None = None,
    version: int | None = None,
    metadata: Mapping[str, str] | None = None,
) -> FeatureGroup:
    """Validate ``query`` at the source (and in the engine), then register
    the on-demand feature group. A failed check leaves the catalog as it was."""
    from fsql.store import _check_names

    keys = [primary_key] if isinstance(primary_key, str) else list(primary_key)
    q = parse_query(query)
    conn = open_connector(store.catalog, store.project, connector)
    columns = conn.describe(q, store.engine)
    names = [c.name for c in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidParameter(
            f"{conn.label()}: the query returns more than one column named " + ", ".join(dupes),
            sqlstate="42701",
            hint="Give each column its own name with AS.",
        )
    types = {c.name: c.ftype for c in columns}
    _check_names(name, types, keys, event_time, features)
    descriptions = dict(features or {})
    fg_features = [Feature(c.name, c.ftype.name, descriptions.get(c.name, "")) for c in columns]
    draft = FeatureGroup(
        id=0,
        project=store.project,
        name=name,
        version=version or 1,
        kind="on_demand",
        description=description,
        primary_key=tuple(keys),
        event_time=event_time,
        online=False,
        has_upserts=False,
        features=tuple(fg_features),
        created_at_us=0,
        connector=connector,
        query=q.sql("postgres"),
    )
    # the engine must be able to run it too (table functions reach the source)
    probe = exp.select(exp.Star()).from_(
        source(store.engine, store.catalog, draft, verify=False).subquery(_ident("fg"))
    )
    store.engine.query(probe.limit(0).sql(DIALECT))
    return store.catalog.create_feature_group(
        project=store.project,
        name=name,
        version=version,
        kind="on_demand",
        features=fg_features,
        primary_key=keys,
        event_time=event_time,
        description=description,
        connector=connector,
        query=draft.query,
        metadata=metadata,
    )


RESERVED_CONNECTOR_NAMES = {"pg_catalog", "information_schema", "system", "default", "public"}


def _check_name(name: str, what: str) -> None:
    if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise InvalidParameter(
            f"{what} name {name!r} is not valid",
            sqlstate="42602",
            hint="Use letters, digits and underscores, starting with a letter.",
        )
    if what == "connector" and (
        name.lower() in RESERVED_CONNECTOR_NAMES or name.lower().startswith("fsql_")
    ):
        raise InvalidParameter(
            f"connector name {name!r} is reserved",
            sqlstate="42939",
            hint="Pick another name; connector names qualify tables (crm.customers).",
        )


def bind_connector_table(store: Store, table: exp.Table) -> bool:
    """``connector.table`` (or ``connector.schema.table``) in plain SQL or as
    a spine: the source table read by the engine itself. Returns False (and
    leaves the node) when the qualifier is not a connector."""
    qualifier = table.catalog or table.db
    names = {c.name: c for c in catalog_connectors.connectors(store.catalog, store.project)}
    record = names.get(qualifier)
    if record is None:
        return False
    conn = make_connector(record.name, record.type, record.options, connector_id=record.id)
    if not conn.pushdown:
        raise FeatureNotSupported(
            f"{conn.label(table.name)}: a {conn.type_name} source is not read as a table directly",
            hint="Create an on-demand feature group over it: CREATE ON DEMAND FEATURE GROUP "
            f"... CONNECTOR {conn.name} ... AS SELECT ... FROM {table.name}.",
        )
    source_table = exp.Table(
        this=table.this.copy(), db=table.args["db"].copy() if table.catalog else None
    )
    _check_source_table(store.engine, conn, source_table)
    fn = conn.table_function(source_table, _set_secret(store.engine, conn))
    assert fn is not None
    fn.meta["fsql_source_table"] = source_table
    alias = table.alias or table.name
    table.replace(exp.Table(this=fn, alias=exp.TableAlias(this=_ident(alias))))
    return True


def _check_source_table(engine: Engine, conn: SourceConnector, table: exp.Table) -> None:
    """Describe ``SELECT * FROM table`` at the source before the engine reads
    it, so a missing table, an unreachable source or refused credentials are
    the errors an on-demand feature group gives (42P01, 08001, 28P01/28000,
    naming the connector and the table), not the engine's. Column types the
    feature types do not cover are no reason to refuse here: the engine
    reads the table its own way."""
    query = exp.select(exp.Star()).from_(table.copy())
    try:
        conn.describe(query, engine)
    except DatatypeMismatch:
        pass


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
        secret = _set_secret(engine, conn)
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


def _set_secret(engine: Engine, conn: SourceConnector) -> exp.Expression:
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


# filter pushdown -------------------------------------------------------------------


def binding_of(node: exp.Expression) -> Binding | None:
    found = node.meta.get(META) if node.meta else None
    return found if isinstance(found, Binding) else None


_SIMPLE_PREDICATES = (
    exp.EQ,
    exp.NEQ,
    exp.LT,
    exp.LTE,
    exp.GT,
    exp.GTE,
    exp.In,
    exp.Is,
    exp.Between,
)
_FORBIDDEN_INSIDE = (exp.Subquery, exp.Select, exp.AggFunc, exp.Window, exp.Placeholder)


def push_down(statement: exp.Expr) -> exp.Expr:
    """Copy simple filters over on-demand relations next to their table
    functions, so the engine sends them to the source. In place; returns
    ``statement``."""
    _spine_bounds(statement)
    for sub in list(statement.find_all(exp.Subquery)):
        outer = sub.this
        if not isinstance(outer, exp.Select) or binding_of(outer) is None:
            continue
        if binding_of(outer).mode != "pushdown":  # type: ignore[union-attr]
            continue
        holder = sub.parent
        if not isinstance(holder, (exp.From, exp.Join)):
            continue
        parent = holder.parent
        if not isinstance(parent, exp.Select) or not parent.args.get("where"):
            continue
        single = not parent.args.get("joins")
        alias = sub.alias_or_name
        targets = _pushable_columns(outer)
        if not targets:
            continue
        for conjunct in conjuncts(parent.args["where"].this):
            moved = _rewrite(conjunct, alias, single, targets)
            if moved is not None:
                inner = targets["__select__"]
                assert isinstance(inner, exp.Select)
                inner.where(moved, copy=False)
    return statement


SCALAR = "fsql_scalar"


def _od_relation(node: exp.Expr) -> bool:
    """``node`` is a select straight over a pushed-down on-demand relation."""
    if not isinstance(node, exp.Select):
        return False
    from_ = node.args.get("from_")
    if from_ is None or not isinstance(from_.this, exp.Subquery) or node.args.get("joins"):
        return False
    b = binding_of(from_.this.this)
    return b is not None and b.mode == "pushdown"


def _spine_bounds(statement: exp.Expr) -> None:
    """A point-in-time join only needs source rows with a key inside the
    spine's key range and an event time at or before the spine's latest
    time: add those bounds (as scalar subqueries over the spine, which the
    engine computes first) to the on-demand side of the join."""
    for join in list(statement.find_all(exp.Join)):
        right = join.this
        on = join.args.get("on")
        select = join.parent
        if on is None or not isinstance(right, exp.Subquery) or not _od_relation(right.this):
            continue
        if not isinstance(select, exp.Select) or select.args.get("from_") is None:
            continue
        spine = select.args["from_"].this
        if not isinstance(spine, exp.Subquery) or not spine.alias_or_name:
            continue
        if any(binding_of(n) is not None for n in spine.find_all(exp.Select)):
            continue  # the spine reads a source itself: do not read it twice more
        s_alias, g_alias = spine.alias_or_name, right.alias_or_name
        rel = right.this
        assert isinstance(rel, exp.Select)
        for conj in conjuncts(on):
            if not isinstance(conj, exp.EQ | exp.GTE | exp.LTE):
                continue
            a, b = conj.this, conj.expression
            if not (isinstance(a, exp.Column) and isinstance(b, exp.Column)):
                continue
            if a.table == g_alias and b.table == s_alias:
                a, b = b, a
                kind = {exp.EQ: "eq", exp.GTE: "le", exp.LTE: "ge"}[type(conj)]
            elif a.table == s_alias and b.table == g_alias:
                kind = {exp.EQ: "eq", exp.GTE: "ge", exp.LTE: "le"}[type(conj)]
            else:
                continue
            # a: spine column, b: group column; kind: spine (op) group
            target = exp.column(_ident(b.name))
            if kind in ("eq", "ge"):  # group <= max(spine)
                rel.where(
                    exp.LTE(this=target, expression=_scalar(spine, "max", a.name)), copy=False
                )
            if kind in ("eq", "le"):  # group >= min(spine)
                rel.where(
                    exp.GTE(this=target.copy(), expression=_scalar(spine, "min", a.name)),
                    copy=False,
                )


def _scalar(spine: exp.Subquery, fn: str, column: str) -> exp.Subquery:
    body = spine.this.copy()
    q = exp.select(exp.func(fn, exp.column(_ident(column)))).from_(
        exp.Subquery(this=body, alias=exp.TableAlias(this=_ident("fsql_bounds")))
    )
    sub = exp.Subquery(this=q)
    sub.meta[SCALAR] = True
    return sub


def _pushable_columns(outer: exp.Select) -> dict[str, exp.Expression]:
    """FG column -> the source column it plainly is, for a query the engine
    sends filters from (one table function, no grouping, limits or windows)."""
    from_ = outer.args.get("from_")
    if from_ is None or not isinstance(from_.this, exp.Subquery):
        return {}
    inner = from_.this.this
    if not isinstance(inner, exp.Select):
        return {}
    if any(
        inner.args.get(k)
        for k in ("joins", "group", "having", "limit", "distinct", "qualify", "offset", "with")
    ):
        return {}
    if any(True for _ in inner.find_all(exp.Window, exp.AggFunc)):
        return {}
    table = inner.args.get("from_")
    if (
        table is None
        or not isinstance(table.this, exp.Table)
        or not isinstance(table.this.this, exp.Anonymous)
    ):
        return {}
    out: dict[str, exp.Expression] = {"__select__": inner}
    for proj in inner.expressions:
        if isinstance(proj, exp.Star):
            return {}
        expr = proj.this if isinstance(proj, exp.Alias) else proj
        if isinstance(expr, exp.Column) and not isinstance(expr.this, exp.Star):
            out[proj.alias_or_name] = exp.column(_ident(expr.name))
    return out


def _rewrite(
    conjunct: exp.Expr, alias: str, single: bool, targets: Mapping[str, exp.Expression]
) -> exp.Expr | None:
    if not isinstance(conjunct, _SIMPLE_PREDICATES):
        return None
    scalars = [n for n in conjunct.find_all(exp.Subquery) if n.meta.get(SCALAR)]
    inside = {id(x) for sc in scalars for x in sc.walk()}
    if any(id(n) not in inside for n in conjunct.find_all(*_FORBIDDEN_INSIDE)):
        return None
    columns = [c for c in conjunct.find_all(exp.Column) if id(c) not in inside]
    if not columns:
        return None
    for c in columns:
        if c.table and c.table != alias:
            return None
        if not c.table and not single:
            return None
        if c.name not in targets or c.name == "__select__":
            return None
    moved = conjunct.copy()
    moved_scalars = [n for n in moved.find_all(exp.Subquery) if n.meta.get(SCALAR)]
    skip = {id(x) for sc in moved_scalars for x in sc.walk()}
    for c in [c for c in moved.find_all(exp.Column) if id(c) not in skip]:
        c.replace(targets[c.name].copy())
    return moved


# explain ---------------------------------------------------------------------------------


def explain_sources(statement: exp.Expr) -> list[dict[str, str]]:
    """Per on-demand relation in a bound (and pushed-down) statement: the
    feature group, connector, mode and the query the source receives, in the
    source's dialect. No secrets: the password is a placeholder."""
    out = []
    for sel in statement.find_all(exp.Select):
        b = binding_of(sel)
        if b is None:
            continue
        from_ = sel.args.get("from_")
        inner = (
            from_.this.this if from_ is not None and isinstance(from_.this, exp.Subquery) else None
        )
        text = ""
        if isinstance(inner, exp.Query):
            shown = inner.copy()
            for sc in [n for n in shown.find_all(exp.Subquery) if n.meta.get(SCALAR)]:
                # computed by the engine first; the source receives a constant
                agg = sc.this.expressions[0]
                sc.replace(exp.var(f"<{agg.key} of spine {agg.this.name}>"))
            for t in list(shown.find_all(exp.Table)):
                if isinstance(t.this, exp.Anonymous) and t.this.meta.get("fsql_source_table"):
                    original = t.this.meta["fsql_source_table"].copy()
                    if t.alias and t.alias != original.name:
                        original.set("alias", exp.TableAlias(this=_ident(t.alias)))
                    t.replace(original)
            text = shown.sql(b.dialect, identify=True)
        if b.mode == "fetch":
            text = b.source_query
        out.append(
            {
                "feature_group": b.fg,
                "connector": b.connector,
                "type": b.connector_type,
                "mode": b.mode,
                "source_query": text,
            }
        )
    return out


def explain_table(statement: exp.Expr) -> pa.Table:
    rows = explain_sources(statement)
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                (k, pa.string())
                for k in ("feature_group", "connector", "type", "mode", "source_query")
            ]
        ),
    )


def explain_plain(store: Store, text: str) -> pa.Table:
    """EXPLAIN of a plain SQL statement's on-demand sources."""
    from fsql.execute import bind_feature_groups
    from fsql.sql.dialect import parse

    statements = parse(text)
    if len(statements) != 1:
        raise InvalidParameter("explain one statement at a time")
    bound = push_down(bind_feature_groups(store, statements[0]))  # type: ignore[arg-type]
    return explain_table(bound)


def source_lines(statement: exp.Expr) -> list[str]:
    """EXPLAIN lines: the query each on-demand source receives."""
    return [
        f"-- on-demand {s['feature_group']} via connector {s['connector']} ({s['type']}, "
        f"{s['mode']}): {s['source_query']}"
        for s in explain_sources(statement)
    ]
