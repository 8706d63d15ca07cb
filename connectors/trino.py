"""Trino sources, through the ``trino`` client.

A Trino connector reads any catalog Trino federates (``catalog.schema.table``
names in the query; ``catalog`` and ``schema`` options give the defaults).
Rows are fetched through the client and handed to the engine as Arrow. The
point-in-time join in Trino's own SQL (window-function form, since Trino has
no ASOF JOIN) is :mod:`fsql.plan.window`; :meth:`TrinoConnector.run` runs
such a query.

Options: ``host`` (127.0.0.1), ``port`` (8080), ``user`` (fsql), ``catalog``,
``schema``, ``http_scheme`` (http), ``password_env`` / ``password_file``
(basic auth, needs https).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pyarrow as pa
from sqlglot import exp

from fsql.connectors.registry import SourceColumn, SourceConnector, arrow_table, unmappable
from fsql.types import FeatureType, array_of, from_name, numeric

if TYPE_CHECKING:
    from fsql.connectors.engine import Engine


class TrinoConnector(SourceConnector):
    type_name = "trino"
    dialect = "trino"
    optional_options = ("host", "port", "user", "catalog", "schema", "http_scheme", "url")
    defaults = {"host": "127.0.0.1", "port": "8080", "user": "fsql", "http_scheme": "http"}

    def __init__(self, name: str, options, *, connector_id: int = 0) -> None:  # type: ignore[no-untyped-def]
        super().__init__(name, options, connector_id=connector_id)
        url = self.options.pop("url", None)
        if url:  # trino://user@host:port/catalog/schema or http(s)://host:port
            u = urlparse(url)
            self.options["host"] = u.hostname or self.options["host"]
            if u.port:
                self.options["port"] = str(u.port)
            if u.username:
                self.options["user"] = u.username
            if u.scheme in ("http", "https"):
                self.options["http_scheme"] = u.scheme
            parts = [p for p in u.path.split("/") if p]
            if parts:
                self.options.setdefault("catalog", parts[0])
            if len(parts) > 1:
                self.options.setdefault("schema", parts[1])

    @property
    def where(self) -> str:
        o = self.options
        return f"trino {o['host']}:{o['port']}" + (f"/{o['catalog']}" if o.get("catalog") else "")

    def _connect(self) -> Any:
        import trino

        o = self.options
        password = self.password()
        auth = trino.auth.BasicAuthentication(o["user"], password) if password else None
        return trino.dbapi.connect(
            host=o["host"],
            port=int(o["port"]),
            user=o["user"],
            catalog=o.get("catalog"),
            schema=o.get("schema"),
            http_scheme=o["http_scheme"],
            auth=auth,
            request_timeout=30,
        )

    def run(self, sql: str) -> tuple[list[str], list[str], list[Sequence[Any]]]:
        """Run Trino SQL; return column names, Trino type names and rows."""
        with self.errors():
            conn = self._connect()
            try:
                cur = conn.cursor()
                cur.execute(sql)
                rows = cur.fetchall()
                desc = cur.description or []
            finally:
                conn.close()
        return [d[0] for d in desc], [str(d[1]) for d in desc], rows

    def check(self, engine: Engine | None = None) -> None:
        self.run("SELECT 1")

    def describe(self, query: exp.Query, engine: Engine | None = None) -> list[SourceColumn]:
        names, types, _ = self.run(self.source_sql(self.probe_query(query)))
        out = []
        for n, t in zip(names, types, strict=True):
            ftype = trino_type(t)
            if ftype is None:
                raise unmappable(self, n, t)
            out.append(SourceColumn(n, ftype, t))
        return out

    def fetch(self, query: exp.Query, columns: Sequence[SourceColumn]) -> pa.Table:
        _, _, rows = self.run(self.source_sql(query))
        return arrow_table(columns, rows)

    def query_arrow(self, sql: str) -> pa.Table:
        """Run Trino SQL and return Arrow, typed by Trino's column types."""
        names, types, rows = self.run(sql)
        cols = []
        for n, t in zip(names, types, strict=True):
            ftype = trino_type(t)
            if ftype is None:
                raise unmappable(self, n, t)
            cols.append(SourceColumn(n, ftype, t))
        return arrow_table(cols, rows)


_SIMPLE = {
    "boolean": "boolean", "tinyint": "smallint", "smallint": "smallint",
    "integer": "integer", "bigint": "bigint", "real": "real", "double": "double precision",
    "varchar": "text", "char": "text", "varbinary": "bytea", "json": "json",
    "date": "date", "uuid": "text",
}  # fmt: skip


def trino_type(text: str) -> FeatureType | None:
    t = text.strip().lower()
    if t.startswith("array(") and t.endswith(")"):
        inner = trino_type(t[6:-1])
        return array_of(inner) if inner is not None else None
    m = re.match(r"decimal\((\d+),\s*(\d+)\)", t)
    if m:
        return numeric(int(m.group(1)), int(m.group(2)))
    if t.startswith("timestamp"):
        return from_name("timestamptz" if "with time zone" in t else "timestamp")
    base = t.split("(")[0].strip()
    if base in _SIMPLE:
        return from_name(_SIMPLE[base])
    return None
