"""Connector types: ``TYPE name`` in ``CREATE CONNECTOR`` -> connector class.

A connector reads one external source. Each type says which options it
takes, how it checks that the source is reachable, how it describes a query
(column names and feature types, asked of the source itself), and how the
engine reads a source table: either a ClickHouse table function the engine
runs itself (``postgresql()``, ``mysql()``, ``file()``: filters and joins
then run in one engine), or, when the engine cannot reach the source, a
fetch through the connector's own client into Arrow.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
from sqlglot import exp

from fsql.connectors.secrets import check_no_plain_secrets, redact, resolve_password
from fsql.errors import (
    ConnectionFailure,
    DatatypeMismatch,
    FsqlError,
    InvalidParameter,
    UndefinedColumn,
    UndefinedObject,
    did_you_mean,
)
from fsql.types import FeatureType

if TYPE_CHECKING:
    from fsql.connectors.engine import Engine

# type name -> "module:Class"; aliases point at the same class.
CONNECTOR_TYPES: dict[str, str] = {
    "postgres": "fsql.connectors.postgres:PostgresConnector",
    "postgresql": "fsql.connectors.postgres:PostgresConnector",
    "mysql": "fsql.connectors.mysql:MySQLConnector",
    "mariadb": "fsql.connectors.mysql:MySQLConnector",
    "files": "fsql.connectors.files:FilesConnector",
    "file": "fsql.connectors.files:FilesConnector",
    "clickhouse": "fsql.connectors.clickhouse_source:ClickHouseSourceConnector",
    "trino": "fsql.connectors.trino:TrinoConnector",
}


class InvalidAuthorization(FsqlError):
    sqlstate = "28P01"


@dataclass(frozen=True)
class SourceColumn:
    name: str
    ftype: FeatureType
    source_type: str


class SourceConnector:
    """Base of every connector type."""

    type_name: ClassVar[str] = ""
    # sqlglot dialect the source speaks (for describe/fetch queries)
    dialect: ClassVar[str] = "postgres"
    # whether the engine reads source tables itself (table_function)
    pushdown: ClassVar[bool] = False
    required_options: ClassVar[tuple[str, ...]] = ()
    optional_options: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, str]] = {}
    # options that may be shown (everything but secrets is safe; secret
    # references are safe too)
    secret_options: ClassVar[tuple[str, ...]] = ("password_env", "password_file")

    def __init__(self, name: str, options: Mapping[str, str], *, connector_id: int = 0) -> None:
        self.name = name
        self.id = connector_id
        opts = {str(k).lower(): str(v) for k, v in options.items()}
        check_no_plain_secrets(name, opts)
        allowed = set(self.required_options) | set(self.optional_options) | set(self.secret_options)
        unknown = [k for k in opts if k not in allowed]
        if unknown:
            raise InvalidParameter(
                f'connector "{name}" (type {self.type_name}): unknown option ' + ", ".join(unknown),
                hint=did_you_mean(unknown[0], sorted(allowed))
                or "Options: " + ", ".join(sorted(allowed)),
            )
        missing = [k for k in self.required_options if not opts.get(k)]
        if missing:
            raise InvalidParameter(
                f'connector "{name}" (type {self.type_name}) needs option ' + ", ".join(missing),
                hint="Options: " + ", ".join(sorted(allowed)),
            )
        self.options = {**self.defaults, **opts}

    # --- naming --------------------------------------------------------

    @property
    def where(self) -> str:
        """Where the source is, for messages (never a secret)."""
        return self.type_name

    def label(self, obj: str | None = None) -> str:
        text = f'connector "{self.name}" ({self.where})'
        return f"{text}, source object {obj}" if obj else text

    def password(self) -> str:
        return resolve_password(self.name, self.options)

    def redact(self, text: str) -> str:
        try:
            return redact(text, self.password())
        except FsqlError:
            return text

    def engine_secret(self, engine: Engine) -> exp.Expression:
        """Set this connector's secret as a query parameter of the engine
        session; return the placeholder (``{fsql_secret_N:String}``) that
        reads it, so SQL text never holds the value."""
        from fsql.connectors.secrets import secret_param

        name = secret_param(self.id)
        password = self.password()
        # parameter values are read in ClickHouse's escaped (TSV) form
        escaped = (
            password.replace("\\", "\\\\")
            .replace("\n", "\\n")
            .replace("\t", "\\t")
            .replace("\r", "\\r")
            .replace("\0", "\\0")
        )
        try:
            engine.execute(f"SET param_{name} = {exp.Literal.string(escaped).sql('clickhouse')}")
        except FsqlError as e:
            raise FsqlError(
                f"{self.label()}: could not hand the secret to the engine: "
                + redact(e.message, password, escaped),
                sqlstate=e.sqlstate,
            ) from None
        return exp.Placeholder(
            this=exp.var(name), kind=exp.DataType.build("String", dialect="clickhouse")
        )

    # --- what a type implements ----------------------------------------

    def check(self, engine: Engine | None = None) -> None:
        """Connect and authenticate; raise a clear error if that fails."""
        raise NotImplementedError

    def describe(self, query: exp.Query, engine: Engine | None = None) -> list[SourceColumn]:
        """The columns ``query`` (PostgreSQL syntax, source tables) returns,
        asked of the source."""
        raise NotImplementedError

    def table_function(self, table: exp.Table, secret: exp.Expression) -> exp.Expression | None:
        """A ClickHouse relation that reads source table ``table`` in the
        engine, or None when the engine cannot reach the source (fetch mode).
        ``secret`` is the expression to use for the password."""
        return None

    def fetch(self, query: exp.Query, columns: Sequence[SourceColumn]) -> pa.Table:
        """Run ``query`` at the source through the connector's client."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    # --- helpers -------------------------------------------------------

    def source_sql(self, query: exp.Query) -> str:
        return query.sql(self.dialect, identify=True)

    def probe_query(self, query: exp.Query) -> exp.Select:
        """``SELECT * FROM (query) AS q LIMIT 0``: columns without rows."""
        return (
            exp.select(exp.Star())
            .from_(query.subquery(exp.to_identifier("fsql_q", quoted=True)))
            .limit(0)
        )

    @contextmanager
    def errors(self, query: exp.Query | None = None, *, connecting: bool = False) -> Iterator[None]:
        """Turn a client's exception into an fsql error naming this
        connector and the source objects of ``query``; ``connecting``: the
        error happened while connecting (so "does not exist" is a role or
        database, not a table)."""
        try:
            yield
        except FsqlError:
            raise
        except Exception as e:  # every client has its own exception tree
            if connecting:
                raise classify_connect(self, e) from None
            raise self.translate(e, query) from None

    def translate(self, e: Exception, query: exp.Query | None) -> FsqlError:
        objects = ", ".join(source_objects(query)) if query is not None else ""
        return classify(self, e, objects)


def source_objects(query: exp.Query) -> list[str]:
    ctes = {c.alias_or_name for c in query.find_all(exp.CTE)}
    seen = []
    for t in query.find_all(exp.Table):
        if not t.name or t.name in ctes:
            continue
        name = ".".join(p.name for p in t.parts)
        if name not in seen:
            seen.append(name)
    return seen


_AUTH_WORDS = ("password authentication", "access denied", "authentication failed", "28p01")
_CONN_WORDS = (
    "connection refused",
    "could not connect",
    "can't connect",
    "timeout",
    "timed out",
    "name or service not known",
    "no route to host",
    "connection failed",
    "max retries exceeded",
    "failed to establish",
)
_MISSING_TABLE_WORDS = ("does not exist", "doesn't exist", "unknown table", "not found", "42p01")
_MISSING_COLUMN_WORDS = (
    "column",
    "unknown identifier",
    "unknown expression identifier",
    "unknown column",
    "cannot be resolved",
)


def classify_connect(conn: SourceConnector, e: Exception) -> FsqlError:
    """An error while connecting: authentication, unknown database, or the
    server cannot be reached."""
    text = conn.redact(" ".join(str(e).split()))
    low = text.lower()
    sqlstate = getattr(e, "sqlstate", None) or ""
    if (
        sqlstate.startswith("28")
        or any(w in low for w in _AUTH_WORDS)
        or ("role" in low and "does not exist" in low)
    ):
        return InvalidAuthorization(
            f"{conn.label()}: authentication failed: {text}",
            sqlstate="28000" if "role" in low else "28P01",
            hint="Check the user and the secret the connector references "
            "(password_env / password_file).",
        )
    if sqlstate == "3D000" or ("database" in low and ("does not exist" in low or "unknown" in low)):
        return UndefinedObject(
            f"{conn.label()}: the database does not exist: {text}",
            sqlstate="3D000",
            hint="Check the database option.",
        )
    return ConnectionFailure(
        f"{conn.label()}: source unreachable: {text}",
        sqlstate="08001",
        hint="Check host, port and database, and that the server is running.",
    )


def classify(conn: SourceConnector, e: Exception, objects: str) -> FsqlError:
    """Map a client exception to an fsql error by its SQLSTATE or message."""
    raw = " ".join(str(e).split())
    text = conn.redact(raw)
    low = text.lower()
    sqlstate = getattr(e, "sqlstate", None) or ""
    what = conn.label(objects or None)
    if sqlstate.startswith("28") or any(w in low for w in _AUTH_WORDS):
        return InvalidAuthorization(
            f"{conn.label()}: authentication failed: {text}",
            hint="Check the user and the secret the connector references "
            "(password_env / password_file).",
        )
    column_words = any(w in low for w in _MISSING_COLUMN_WORDS)
    if sqlstate == "42703" or (
        column_words and any(w in low for w in ("exist", "unknown", "cannot be resolved"))
    ):
        return UndefinedColumn(f"{what}: {text}", hint="Was the column renamed or dropped?")
    if sqlstate in ("42P01", "3F000") or any(w in low for w in _MISSING_TABLE_WORDS):
        return UndefinedObject(f"{what}: {text}", hint="Was the table renamed or dropped?")
    if sqlstate.startswith("08") or sqlstate == "3D000" or any(w in low for w in _CONN_WORDS):
        return ConnectionFailure(
            f"{conn.label()}: source unreachable: {text}",
            sqlstate="08001",
            hint="Check host, port and database, and that the server is running.",
        )
    if len(sqlstate) == 5 and sqlstate.isalnum() and sqlstate[:2] not in ("00", "01", "02", "HY"):
        return FsqlError(f"{what}: {text}", sqlstate=sqlstate)  # the source's own
    for words, code in _SOURCE_MESSAGES:  # clients that give no SQLSTATE (PyMySQL)
        if words in low:
            return FsqlError(f"{what}: {text}", sqlstate=code)
    return FsqlError(f"{what}: {text}", sqlstate="58000")


# PostgreSQL messages (the engine passes the text, not the SQLSTATE) -> SQLSTATE;
# the first match wins, so specific phrases come before general ones
_SOURCE_MESSAGES = (
    ("division by zero", "22012"),
    ("division by 0", "22012"),
    ("date/time field value out of range", "22008"),
    ("out of range", "22003"),
    ("numeric field overflow", "22003"),
    ("invalid input syntax", "22P02"),
    ("invalid input value", "22P02"),
    ("value too long", "22001"),
    ("cannot take logarithm", "2201E"),
    ("cannot take square root", "2201F"),
    ("invalid regular expression", "2201B"),
    ("canceling statement due to statement timeout", "57014"),
    ("permission denied", "42501"),
)
_CONNECT_CODES = ("Code: 614.", "Code: 279.")  # PostgreSQL / MySQL connection failures
# what only an error from a source (or the engine's reading of one) says; not
# "postgresql(" alone, which the engine quotes when it rejects the SQL itself
_SOURCE_MARKERS = (
    "pqxx::",
    "mysqlxx::",
    "postgresql table",
    "mysql table",
    "postgresql value",
    "mysql value",
)


def is_source_error(message: str) -> bool:
    """Whether an engine message reports something a PostgreSQL or MySQL
    source (or the engine's reading of one) raised."""
    low = message.lower()
    return message.startswith(_CONNECT_CODES) or any(m in low for m in _SOURCE_MARKERS)


def source_message(message: str) -> str:
    """The source's own words inside an engine message: without the engine's
    code, exception class and transport framing."""
    text = message.strip()
    for marker in ("ERROR:", "FATAL:"):
        at = text.find(marker)
        if at >= 0:
            text = text[at + len(marker) :]
            break
    else:
        at = text.rfind("::Exception: ")
        if at >= 0:
            text = text[at + len("::Exception: ") :]
        elif text.startswith("Code:") and "DB::Exception: " in text:
            text = text.split("DB::Exception: ", 1)[1]
    text = " ".join(text.split())
    # mysqlxx ends with "((nullptr):0)." or " (127.0.0.1:3306)."; the connector names where
    text = re.sub(r"\s*\(\(nullptr\):\d+\)\.?$", "", text)
    text = re.sub(r"\s*\([\w.\-]+:\d+\)\.?$", "", text)
    text = text.rstrip(" .")
    return text


def classify_engine_error(conn: SourceConnector, message: str, objects: str) -> FsqlError:
    """An error a source raised while the engine read it (pushdown mode),
    named by connector and source objects; the source's SQLSTATE where its
    message gives it away. The engine SQL is not kept: it is internal."""
    text = conn.redact(source_message(message))
    low = text.lower()
    if message.startswith(_CONNECT_CODES):
        return classify_connect(conn, Exception(text))
    if "cannot parse" in message.lower() and "value" in message.lower():
        return FsqlError(
            f"{conn.label(objects or None)}: the engine cannot hold a value the source "
            f"returned: {text}",
            sqlstate="22003",
            hint="Read it through an on-demand feature group whose query CASTs the column "
            "to a type that holds every value (numeric(p,s), double precision, text).",
        )
    for words, sqlstate in _SOURCE_MESSAGES:
        if words in low:
            return FsqlError(
                f"{conn.label(objects or None)}: {text}",
                sqlstate=sqlstate,
                hint="The source raised this while computing the rows; check the data "
                "or the source view the query reads.",
            )
    error = classify(conn, Exception(text), objects)
    if error.sqlstate == "58000" and "data_exception" in message:
        error.sqlstate = "22000"
    return error


def unmappable(conn: SourceConnector, column: str, source_type: str) -> DatatypeMismatch:
    return DatatypeMismatch(
        f'{conn.label()}: column "{column}" has source type {source_type}, '
        "which has no feature type",
        hint="CAST it in the query to a number, text, boolean, date or timestamp.",
    )


def connector_class(type_name: str) -> type[SourceConnector]:
    key = type_name.lower()
    target = CONNECTOR_TYPES.get(key)
    if target is None:
        raise InvalidParameter(
            f"unknown connector type {type_name!r}",
            hint=did_you_mean(key, CONNECTOR_TYPES)
            or "Types: " + ", ".join(sorted(set(CONNECTOR_TYPES))),
        )
    module, cls = target.split(":")
    found: type[SourceConnector] = getattr(importlib.import_module(module), cls)
    return found


def make_connector(
    name: str, type_name: str, options: Mapping[str, str], *, connector_id: int = 0
) -> SourceConnector:
    return connector_class(type_name)(name, options, connector_id=connector_id)


def arrow_table(columns: Sequence[SourceColumn], rows: Sequence[Sequence[Any]]) -> pa.Table:
    """An Arrow table from client rows, typed by the described columns."""
    names = [c.name for c in columns]
    data: list[list[Any]] = [[] for _ in columns]
    for row in rows:
        for i, v in enumerate(row):
            data[i].append(v)
    arrays = []
    for col, values in zip(columns, data, strict=True):
        try:
            arrays.append(_array(values, col.ftype.arrow))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as e:
            raise DatatypeMismatch(
                f'column "{col.name}" ({col.source_type}) holds a value that is not '
                f"{col.ftype.name}: {e}",
                hint="CAST it in the query to a type that holds every value.",
            ) from None
    return pa.Table.from_arrays(arrays, names=names)


def _array(values: list[Any], dtype: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(dtype) and dtype.tz is None:
        values = [v.replace(tzinfo=None) if getattr(v, "tzinfo", None) else v for v in values]
    if pa.types.is_boolean(dtype):
        values = [None if v is None else bool(v) for v in values]
    return pa.array(values, type=dtype)


Mapper = Callable[[str], FeatureType]
