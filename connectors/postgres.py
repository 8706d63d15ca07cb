"""PostgreSQL sources.

The engine reads source tables itself with ClickHouse's ``postgresql()``
table function, so filters on the table's columns are sent to PostgreSQL
and the as-of join runs in the engine. Describing a query (column names and
types) asks PostgreSQL itself through psycopg.

Options: ``host`` (127.0.0.1), ``port`` (5432), ``database`` (required),
``user`` (postgres), ``schema`` (public), ``connect_timeout`` (5 s),
``password_env`` / ``password_file``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from fsql.connectors.registry import (
    SourceColumn,
    SourceConnector,
    arrow_table,
    unmappable,
)
from fsql.types import FeatureType, array_of, from_name, numeric

if TYPE_CHECKING:
    from fsql.connectors.engine import Engine

# PostgreSQL type OID -> canonical feature type name
_OIDS = {
    16: "boolean",
    17: "bytea",
    18: "text",  # "char"
    19: "text",  # name
    20: "bigint",
    21: "smallint",
    23: "integer",
    25: "text",
    114: "json",
    700: "real",
    701: "double precision",
    1042: "text",  # bpchar
    1043: "text",  # varchar
    1082: "date",
    1114: "timestamp",
    1184: "timestamptz",
    2950: "text",  # uuid
    3802: "json",  # jsonb
}
_NUMERIC_OID = 1700
# array OID -> element OID
_ARRAYS = {
    1000: 16, 1001: 17, 1005: 21, 1007: 23, 1016: 20, 1009: 25, 1015: 1043,
    1021: 700, 1022: 701, 1182: 1082, 1115: 1114, 1185: 1184, 1231: 1700, 2951: 2950,
}  # fmt: skip


class PostgresConnector(SourceConnector):
    type_name = "postgres"
    dialect = "postgres"
    pushdown = True
    required_options = ("database",)
    optional_options = ("host", "port", "user", "schema", "connect_timeout")
    defaults = {
        "host": "127.0.0.1",
        "port": "5432",
        "user": "postgres",
        "schema": "public",
        "connect_timeout": "5",
    }

    @property
    def where(self) -> str:
        o = self.options
        return f"postgres {o['host']}:{o['port']}/{o['database']}"

    def _connect(self) -> Any:
        import psycopg

        o = self.options
        with self.errors(connecting=True):
            return psycopg.connect(
                host=o["host"],
                port=int(o["port"]),
                dbname=o["database"],
                user=o["user"],
                password=self.password() or None,
                connect_timeout=int(o["connect_timeout"]),
                autocommit=True,
            )

    def check(self, engine: Engine | None = None) -> None:
        self._connect().close()

    def describe(self, query: exp.Query, engine: Engine | None = None) -> list[SourceColumn]:
        sql = self.source_sql(self.probe_query(query))
        with self._connect() as conn, self.errors(query):
            cur = conn.execute(sql)
            desc = list(cur.description or [])
            names = {}
            unknown = [d.type_code for d in desc if _map(d) is None]
            if unknown:
                rows = conn.execute(
                    "SELECT oid, format_type(oid, NULL) FROM pg_type WHERE oid = ANY(%s)",
                    [unknown],
                ).fetchall()
                names = {int(r[0]): str(r[1]) for r in rows}
        out = []
        for d in desc:
            ftype = _map(d)
            if ftype is None:
                raise unmappable(self, d.name, names.get(d.type_code, f"oid {d.type_code}"))
            out.append(SourceColumn(d.name, ftype, names.get(d.type_code, ftype.name)))
        return out

    def source_sql(self, query: exp.Query) -> str:
        """The query as PostgreSQL runs it: unqualified tables in ``schema``."""
        q = query.copy()
        ctes = {c.alias_or_name for c in q.find_all(exp.CTE)}
        for t in q.find_all(exp.Table):
            if t.name and not t.db and t.name not in ctes:
                t.set("db", exp.to_identifier(self.options["schema"], quoted=True))
        return q.sql(self.dialect, identify=True)

    def table_function(self, table: exp.Table, secret: exp.Expression) -> exp.Expression:
        o = self.options
        schema = table.db or o["schema"]
        lit = exp.Literal.string
        return exp.Anonymous(
            this="postgresql",
            expressions=[
                lit(f"{o['host']}:{o['port']}"),
                lit(o["database"]),
                lit(table.name),
                lit(o["user"]),
                secret,
                lit(schema),
            ],
        )

    def fetch(self, query: exp.Query, columns: Sequence[SourceColumn]) -> pa.Table:
        sql = self.source_sql(query)
        with self._connect() as conn, self.errors(query):
            rows = conn.execute(sql).fetchall()
        return arrow_table(columns, rows)


def _map(d: Any) -> FeatureType | None:
    oid = d.type_code
    if oid == _NUMERIC_OID:
        if d.precision:
            return numeric(min(int(d.precision), 76), int(d.scale or 0))
        return numeric(38, 9)
    if oid in _OIDS:
        return from_name(_OIDS[oid])
    if oid in _ARRAYS:
        inner = _ARRAYS[oid]
        if inner == _NUMERIC_OID:
            return array_of(numeric(38, 9))
        return array_of(from_name(_OIDS[inner]))
    return None
