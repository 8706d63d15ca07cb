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
from fsql.errors import DatatypeMismatch
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
_NUMERIC_ARRAY_OID = 1231
MAX_NUMERIC_PRECISION = 76  # ClickHouse Decimal256
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
            if d.type_code in (_NUMERIC_OID, _NUMERIC_ARRAY_OID):
                self._check_numeric(d, query)
            ftype = _map(d)
            if ftype is None:
                raise unmappable(self, d.name, names.get(d.type_code, f"oid {d.type_code}"))
            out.append(SourceColumn(d.name, ftype, names.get(d.type_code, ftype.name)))
        return out

    def _check_numeric(self, d: Any, query: exp.Query) -> None:
        """A ``numeric`` without a declared precision (or with more digits
        than the engine's widest decimal) has no fixed feature type: refuse
        it by name, as a read would otherwise fail on a large value or
        round one with more scale."""
        from fsql.connectors.registry import source_objects

        array = "[]" if d.type_code == _NUMERIC_ARRAY_OID else ""
        if not d.precision:
            what = f"numeric{array} without a precision, which has no fixed feature type"
        elif int(d.precision) > MAX_NUMERIC_PRECISION:
            what = (
                f"numeric({d.precision},{d.scale or 0}){array}, wider than the "
                f"{MAX_NUMERIC_PRECISION} digits a feature's numeric holds"
            )
        else:
            return
        objects = ", ".join(source_objects(query)) or None
        raise DatatypeMismatch(
            f'{self.label(objects)}: column "{d.name}" has source type {what}',
            hint=f'CAST it in the query: CAST("{d.name}" AS numeric(p,s)) with the precision '
            f'and scale its values need, or CAST("{d.name}" AS double precision).',
        )

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
    if oid in (_NUMERIC_OID, _NUMERIC_ARRAY_OID):
        # unconstrained or too wide: refused by PostgresConnector._check_numeric
        if not d.precision or int(d.precision) > MAX_NUMERIC_PRECISION:
            return None
        n = numeric(int(d.precision), int(d.scale or 0))
        return n if oid == _NUMERIC_OID else array_of(n)
    if oid in _OIDS:
        return from_name(_OIDS[oid])
    if oid in _ARRAYS:
        return array_of(from_name(_OIDS[_ARRAYS[oid]]))
    return None
