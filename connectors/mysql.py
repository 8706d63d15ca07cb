"""MySQL and MariaDB sources.

The engine reads source tables itself with ClickHouse's ``mysql()`` table
function (filters on table columns are sent to the server); describing a
query asks the server through PyMySQL.

Options: ``host`` (127.0.0.1), ``port`` (3306), ``database`` (required),
``user`` (root), ``connect_timeout`` (5 s), ``password_env`` /
``password_file``. Times: the session zone is UTC; ``DATETIME`` is a naive
``timestamp``, ``TIMESTAMP`` a ``timestamptz``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from fsql.connectors.registry import SourceColumn, SourceConnector, arrow_table, unmappable
from fsql.types import FeatureType, from_name, numeric

if TYPE_CHECKING:
    from fsql.connectors.engine import Engine

# MySQL protocol column types
DECIMAL, TINY, SHORT, LONG, FLOAT, DOUBLE, NULL, TIMESTAMP, LONGLONG, INT24 = range(10)
DATE, TIME, DATETIME, YEAR, NEWDATE, VARCHAR, BIT = range(10, 17)
JSON, NEWDECIMAL, ENUM, SET = 245, 246, 247, 248
BLOBS = (249, 250, 251, 252)
VAR_STRING, STRING, GEOMETRY = 253, 254, 255
UNSIGNED_FLAG = 32
BINARY_CHARSET = 63

_NAMES = {
    DECIMAL: "decimal", TINY: "tinyint", SHORT: "smallint", LONG: "int", FLOAT: "float",
    DOUBLE: "double", NULL: "null", TIMESTAMP: "timestamp", LONGLONG: "bigint",
    INT24: "mediumint", DATE: "date", TIME: "time", DATETIME: "datetime", YEAR: "year",
    BIT: "bit", JSON: "json", NEWDECIMAL: "decimal", ENUM: "enum", SET: "set",
    GEOMETRY: "geometry",
}  # fmt: skip


class MySQLConnector(SourceConnector):
    type_name = "mysql"
    dialect = "mysql"
    pushdown = True
    required_options = ("database",)
    optional_options = ("host", "port", "user", "connect_timeout")
    defaults = {"host": "127.0.0.1", "port": "3306", "user": "root", "connect_timeout": "5"}

    @property
    def where(self) -> str:
        o = self.options
        return f"mysql {o['host']}:{o['port']}/{o['database']}"

    def _connect(self) -> Any:
        import pymysql

        o = self.options
        with self.errors(connecting=True):
            return pymysql.connect(
                host=o["host"],
                port=int(o["port"]),
                database=o["database"],
                user=o["user"],
                password=self.password(),
                connect_timeout=int(o["connect_timeout"]),
                init_command="SET time_zone = '+00:00'",
                charset="utf8mb4",
            )

    def check(self, engine: Engine | None = None) -> None:
        self._connect().close()

    def describe(self, query: exp.Query, engine: Engine | None = None) -> list[SourceColumn]:
        sql = self.source_sql(self.probe_query(query))
        conn = self._connect()
        with self.errors(query):
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    fields = list(cur._result.fields) if cur._result else []
            finally:
                conn.close()
        out = []
        for f in fields:
            ftype = _map(f)
            source_type = _NAMES.get(
                f.type_code, "text" if f.charsetnr != BINARY_CHARSET else "blob"
            )
            if ftype is None:
                raise unmappable(self, f.name, source_type)
            out.append(SourceColumn(f.name, ftype, source_type))
        return out

    def table_function(self, table: exp.Table, secret: exp.Expression) -> exp.Expression:
        o = self.options
        lit = exp.Literal.string
        return exp.Anonymous(
            this="mysql",
            expressions=[
                lit(f"{o['host']}:{o['port']}"),
                lit(table.db or o["database"]),
                lit(table.name),
                lit(o["user"]),
                secret,
            ],
        )

    def fetch(self, query: exp.Query, columns: Sequence[SourceColumn]) -> pa.Table:
        sql = self.source_sql(query)
        conn = self._connect()
        with self.errors(query):
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    rows = cur.fetchall()
            finally:
                conn.close()
        return arrow_table(columns, rows)


def _map(f: Any) -> FeatureType | None:
    t = f.type_code
    unsigned = bool(f.flags & UNSIGNED_FLAG)
    if t == TINY:
        return from_name("boolean" if f.length == 1 else "smallint")
    if t in (SHORT, YEAR):
        return from_name("integer" if unsigned else "smallint")
    if t in (LONG, INT24):
        return from_name("bigint" if unsigned else "integer")
    if t == LONGLONG:
        return numeric(20, 0) if unsigned else from_name("bigint")
    if t == FLOAT:
        return from_name("real")
    if t == DOUBLE:
        return from_name("double precision")
    if t in (DECIMAL, NEWDECIMAL):
        scale = int(f.scale or 0)
        precision = int(f.length) - (1 if scale else 0) - (0 if unsigned else 1)
        return numeric(max(1, min(precision, 76)), scale)
    if t in (DATE, NEWDATE):
        return from_name("date")
    if t == DATETIME:
        return from_name("timestamp")
    if t == TIMESTAMP:
        return from_name("timestamptz")
    if t == JSON:
        return from_name("json")
    if t in (VARCHAR, VAR_STRING, STRING, ENUM, SET, *BLOBS):
        return from_name("bytea" if f.charsetnr == BINARY_CHARSET else "text")
    if t == NULL:
        return from_name("text")
    return None
