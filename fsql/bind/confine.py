"""Confinement: what a user's statement may name before it reaches the engine.

The binder replaces every table reference by a relation a relation kind
produced; this module refuses everything else a statement could use to
reach outside fsql's own relations through the engine:

- table functions, however spelled or quoted, except a few pure ones
  (``generate_series``, ``numbers``, ``zeros``) — ``"file"(...)``,
  ``url(...)``, ``merge(...)``, ``mysql(...)``, ``sqlite(...)``, ... are
  42501 (the engine has them; they are not yours), unknown ones 42883;
- engine functions that read outside the query's rows (``"file"('/etc/x')``
  as a scalar, dictionaries, settings, the server's host and ports, ...):
  42501;
- database-qualified names that are not a connector's table or a schema
  fsql answers for (``public``): engine databases (``system``,
  ``INFORMATION_SCHEMA``, ``fsql_<project>``, ...) are 42501, others 42P01;
- engine clauses (``SETTINGS``, ``FORMAT``, ``INTO OUTFILE``) and
  ``SELECT ... INTO``: 0A000.

Nodes a relation kind produced carry ``meta['fsql_bound']`` and are not
looked into: they are fsql's own SQL. As a second line, queries that read no
external source run with the engine's ``readonly = 1`` (see
:func:`engine_settings`).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from sqlglot import exp

from fsql.errors import FeatureNotSupported, FsqlError, UndefinedObject, position_of

if TYPE_CHECKING:
    from fsql.store.core import StoreCore

BOUND = "fsql_bound"

# the calling session's statement_timeout in milliseconds (0/None: none);
# a server sets it around each statement of a session that SET it
STATEMENT_TIMEOUT_MS: ContextVar[int | None] = ContextVar("statement_timeout_ms", default=None)

# every table function of the engine (ClickHouse: system.table_functions)
ENGINE_TABLE_FUNCTIONS = frozenset(
    [
        "arrowstream",
        "azureblobstorage",
        "azureblobstoragecluster",
        "bigquery",
        "cluster",
        "clusterallreplicas",
        "cosn",
        "deltalake",
        "deltalakeazure",
        "deltalakeazurecluster",
        "deltalakecluster",
        "deltalakelocal",
        "deltalakes3",
        "deltalakes3cluster",
        "dictionary",
        "eval",
        "executable",
        "file",
        "filecluster",
        "filesystem",
        "format",
        "fuzzjson",
        "fuzzquery",
        "gcs",
        "generate_series",
        "generaterandom",
        "generateseries",
        "hdfs",
        "hdfscluster",
        "hudi",
        "hudicluster",
        "iceberg",
        "icebergazure",
        "icebergazurecluster",
        "icebergcluster",
        "iceberghdfs",
        "iceberghdfscluster",
        "iceberglocal",
        "iceberglocalcluster",
        "icebergs3",
        "icebergs3cluster",
        "input",
        "jdbc",
        "loop",
        "merge",
        "mergetreeanalyzeindexes",
        "mergetreeanalyzeindexesuuid",
        "mergetreecodecblockcounts",
        "mergetreeindex",
        "mergetreeprojection",
        "mergetreetextindex",
        "mongodb",
        "mysql",
        "null",
        "numbers",
        "numbers_mt",
        "odbc",
        "oss",
        "paimon",
        "paimonazure",
        "paimonazurecluster",
        "paimoncluster",
        "paimonhdfs",
        "paimonhdfscluster",
        "paimonlocal",
        "paimons3",
        "paimons3cluster",
        "postgresql",
        "primes",
        "prometheusquery",
        "prometheusqueryrange",
        "python",
        "redis",
        "remote",
        "remotesecure",
        "s3",
        "s3cluster",
        "sqlite",
        "sqlstandardvalues",
        "timeseriesdata",
        "timeseriesmetricfamilies",
        "timeseriesmetrics",
        "timeseriessamples",
        "timeseriesselector",
        "timeseriestags",
        "url",
        "urlcluster",
        "values",
        "view",
        "viewexplain",
        "viewifpermitted",
        "ytsaurus",
        "zeros",
        "zeros_mt",
    ]
)

# table functions that compute rows from their arguments alone
PURE_TABLE_FUNCTIONS = frozenset({"generate_series", "generateseries", "numbers", "zeros"})

# engine scalar functions that read outside the query's rows: files,
# dictionaries and joins of engine tables, settings, the host, the server
ENGINE_REACHING_FUNCTIONS = frozenset(
    [
        "file",
        "catboostevaluate",
        "evalmlmethod",
        "naivebayesclassifier",
        "joinget",
        "joingetornull",
        "dictget",
        "dictgetordefault",
        "dictgetornull",
        "dicthas",
        "dictisin",
        "dictgethierarchy",
        "dictgetchildren",
        "dictgetdescendants",
        "dictgetall",
        "hascolumnintable",
        "getsetting",
        "getsettingordefault",
        "getmergetreesetting",
        "getserversetting",
        "getmacro",
        "currentdatabase",
        "currentprofiles",
        "currentroles",
        "enabledprofiles",
        "enabledroles",
        "defaultprofiles",
        "defaultroles",
        "getserverport",
        "tcpport",
        "hostname",
        "fqdn",
        "serveruuid",
        "uptime",
        "buildid",
        "filesystemavailable",
        "filesystemcapacity",
        "filesystemunreserved",
        "getoskernelversion",
        "displayname",
        "queryid",
        "initialqueryid",
        "initialquerystarttime",
        "shardnum",
        "shardcount",
        "getclienthttpheader",
        "revision",
        "zookeepersessionuptime",
        "globalvariable",
        "showcertificate",
        "addresstoline",
        "addresstolinewithinlines",
        "addresstosymbol",
        "demangle",
        "transactionid",
        "transactionlatestsnapshot",
        "transactionoldestsnapshot",
        "sleep",
        "sleepeachrow",
        "getclientaddress",
    ]
)

# databases of the engine itself: they exist, but are not the user's
ENGINE_DATABASES = frozenset({"system", "information_schema", "default", "fsqltmp_on_demand"})

# schemas whose tables are fsql's own relations, named as PostgreSQL does
PUBLIC_SCHEMAS = frozenset({"public"})


def mark(node: exp.Expr) -> exp.Expr:
    """Mark a node a relation kind produced (fsql's own SQL)."""
    node.meta[BOUND] = True
    return node


def is_bound(node: exp.Expr) -> bool:
    return bool(node.meta and node.meta.get(BOUND))


def user_nodes(tree: exp.Expr) -> list[exp.Expr]:
    """Every node of ``tree`` outside the subtrees a relation kind produced."""
    out: list[exp.Expr] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if is_bound(node):
            continue
        out.append(node)
        stack.extend(node.iter_expressions())
    return out


def function_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower() if isinstance(node, exp.Func) else node.key.lower()


def check_functions(tree: exp.Expr) -> None:
    """Refuse engine functions that reach outside the query's rows, and
    engine clauses, anywhere in the user's part of ``tree``."""
    for node in user_nodes(tree):
        if isinstance(node, exp.Anonymous):
            name = function_name(node)
            if name in PURE_TABLE_FUNCTIONS:
                continue
            if name in ENGINE_TABLE_FUNCTIONS or name in ENGINE_REACHING_FUNCTIONS:
                raise permission_denied(f"function {node.name}", node)
        if isinstance(node, exp.Query):
            for clause in ("settings", "format"):
                if node.args.get(clause):
                    raise FeatureNotSupported(
                        f"{clause.upper()} (an engine clause) is not supported",
                        position=position_of(node),
                    )
        if isinstance(node, exp.Into):
            raise FeatureNotSupported(
                "SELECT ... INTO is not supported",
                position=position_of(node),
                hint="CREATE FEATURE GROUP name ... AS SELECT ... makes a new feature group.",
            )


def check_table_function(table: exp.Table) -> None:
    """A function in FROM that no relation kind took: pure ones pass."""
    fn = table.this
    if isinstance(fn, (exp.GenerateSeries, exp.ExplodingGenerateSeries)):
        return
    name = function_name(fn)
    if name in PURE_TABLE_FUNCTIONS:
        return
    if name in ENGINE_TABLE_FUNCTIONS:
        raise permission_denied(f"table function {name}", table)
    raise UndefinedObject(
        f"function {name} does not exist", sqlstate="42883", position=position_of(fn)
    )


def is_public(project: str, table: exp.Table) -> bool:
    """``public.t`` or ``<project>.public.t``: PostgreSQL's default schema,
    where fsql's relations are."""
    if str(table.db).lower() not in PUBLIC_SCHEMAS:
        return False
    return not table.catalog or table.catalog == project


def refuse_qualified(table: exp.Table) -> FsqlError:
    """A ``schema.table`` (or ``db.schema.table``) no relation kind took."""
    qualifier = str(table.catalog or table.db)
    shown = ".".join(p for p in (table.catalog, table.db, table.name) if p)
    low = qualifier.lower()
    if low in ENGINE_DATABASES or low.startswith("fsql_"):
        return permission_denied(f'relation "{shown}"', table)
    return UndefinedObject(f'relation "{shown}" does not exist', position=position_of(table))


def permission_denied(what: str, node: exp.Expr) -> FsqlError:
    return FsqlError(
        f"permission denied for {what}",
        sqlstate="42501",
        position=position_of(node),
        hint="Statements read fsql's own relations: feature groups, training datasets, "
        "connector tables (connector.table) and spines.",
    )


STATEMENTS = (exp.Query,)


def check_statement(statement: exp.Expr) -> None:
    """Only queries run in the engine as they are; every other statement
    kind fsql runs has its own executor."""
    if isinstance(statement, STATEMENTS):
        return
    raise FeatureNotSupported(
        f"{statement_name(statement)} is not supported",
        position=position_of(statement),
        hint=_HINTS.get(type(statement)),
    )


_HINTS: dict[type, str] = {
    exp.Create: "Feature groups are created with CREATE FEATURE GROUP name (...) "
    "PRIMARY KEY (...) [EVENT TIME col] or CREATE FEATURE GROUP name ... AS SELECT ...",
    exp.Delete: "Feature groups keep every commit; a later commit of the same key and "
    "event time supersedes a row.",
    exp.Update: "Insert the corrected row: a later commit of the same key and event "
    "time supersedes the earlier one.",
    exp.Drop: "DROP FEATURE GROUP name [VERSION n] drops a feature group.",
}


def statement_name(statement: exp.Expr) -> str:
    if isinstance(statement, (exp.Create, exp.Drop)):
        kind = str(statement.args.get("kind") or "").upper()
        word = "CREATE" if isinstance(statement, exp.Create) else "DROP"
        return f"{word} {kind}".strip()
    if isinstance(statement, exp.Command):
        return str(statement.this).upper()
    names = {
        exp.Delete: "DELETE",
        exp.Update: "UPDATE",
        exp.Insert: "INSERT",
        exp.Alter: "ALTER",
        exp.TruncateTable: "TRUNCATE",
        exp.Merge: "MERGE",
        exp.Set: "SET",
        exp.Use: "USE",
        exp.Transaction: "BEGIN",
        exp.Commit: "COMMIT",
        exp.Rollback: "ROLLBACK",
    }
    for cls, name in names.items():
        if isinstance(statement, cls):
            return name
    return type(statement).__name__.upper()


def reads_outside(tree: exp.Expr) -> bool:
    """Whether the bound ``tree`` reads through a table function other than
    a pure one (connector sources, files, Arrow inputs)."""
    for node in tree.find_all(exp.Anonymous):
        if function_name(node) not in PURE_TABLE_FUNCTIONS and (
            function_name(node) in ENGINE_TABLE_FUNCTIONS
        ):
            return True
    return False


def engine_settings(store: StoreCore, tree: exp.Expr) -> list[exp.Expr]:
    """The engine settings a user query runs with (the second line behind
    the binder): ``readonly = 1`` unless it reads a source, a file or an
    Arrow input (the engine refuses those table functions in read-only
    mode), the store's per-query memory limit, and the session's
    ``statement_timeout`` as the engine's ``max_execution_time``."""
    settings: list[exp.Expr] = []
    if not reads_outside(tree):
        settings.append(_setting("readonly", 1))
    limit = getattr(store, "query_memory_limit", None)
    if limit:
        settings.append(_setting("max_memory_usage", int(limit)))
    timeout = STATEMENT_TIMEOUT_MS.get()
    if timeout:
        settings.append(
            exp.EQ(
                this=exp.var("max_execution_time"),
                expression=exp.Literal.number(round(timeout / 1000, 3)),
            )
        )
    return settings


def with_settings(store: StoreCore, tree: exp.Expr) -> exp.Expr:
    """``tree`` (a bound query) with :func:`engine_settings` attached."""
    if not isinstance(tree, exp.Query):
        return tree
    settings = engine_settings(store, tree)
    if settings:
        tree.set("settings", [*(tree.args.get("settings") or []), *settings])
    return tree


def _setting(name: str, value: int) -> exp.Expr:
    return exp.EQ(this=exp.var(name), expression=exp.Literal.number(value))
