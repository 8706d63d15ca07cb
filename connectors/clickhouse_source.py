"""ClickHouse server sources, through clickhouse-connect (HTTP).

Rows are fetched through the client as Arrow (``query_arrow``) and handed
to the engine; describing a query asks the server for the result's column
types (``LIMIT 0``). The offline store itself on a ClickHouse server is
:mod:`fsql.connectors.clickhouse_engine`; this is ClickHouse as a *source*.

Options: ``url`` (``clickhouse://user@host:8123/database``, no password),
or ``host`` (127.0.0.1), ``port`` (8123), ``database`` (default),
``user`` (default), ``secure`` (false), ``connect_timeout`` (5 s),
``password_env`` / ``password_file``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa
from sqlglot import exp

from fsql.connectors.registry import SourceColumn, SourceConnector
from fsql.errors import InvalidParameter
from fsql.types import from_clickhouse

if TYPE_CHECKING:
    from fsql.connectors.engine import Engine


class ClickHouseSourceConnector(SourceConnector):
    type_name = "clickhouse"
    dialect = "clickhouse"
    optional_options = ("host", "port", "database", "user", "secure", "connect_timeout", "url")
    defaults = {
        "host": "127.0.0.1",
        "port": "8123",
        "database": "default",
        "user": "default",
        "secure": "false",
        "connect_timeout": "5",
    }

    def __init__(self, name: str, options, *, connector_id: int = 0) -> None:  # type: ignore[no-untyped-def]
        super().__init__(name, options, connector_id=connector_id)
        url = self.options.pop("url", None)
        if url:  # clickhouse://user@host:8123/db, clickhouses://, http(s)://
            u = urlsplit(url)
            if u.password:
                raise InvalidParameter(
                    f'connector "{name}": the url holds a password in plain text',
                    sqlstate="28000",
                    hint="Leave it out of the url and use password_env or password_file.",
                )
            secure = u.scheme.lower() in ("clickhouses", "https")
            self.options["secure"] = "true" if secure else self.options["secure"]
            self.options["host"] = u.hostname or self.options["host"]
            self.options["port"] = str(u.port or (8443 if secure else self.options["port"]))
            if u.username:
                self.options["user"] = unquote(u.username)
            if u.path.strip("/"):
                self.options["database"] = u.path.strip("/")

    @property
    def where(self) -> str:
        o = self.options
        return f"clickhouse {o['host']}:{o['port']}/{o['database']}"

    def _client(self) -> Any:
        import clickhouse_connect

        o = self.options
        return clickhouse_connect.get_client(
            host=o["host"],
            port=int(o["port"]),
            database=o["database"],
            username=o["user"],
            password=self.password(),
            secure=o["secure"].lower() in ("1", "true", "yes", "on"),
            connect_timeout=int(o["connect_timeout"]),
        )

    def check(self, engine: Engine | None = None) -> None:
        with self.errors():
            client = self._client()
            try:
                client.command("SELECT 1")
            finally:
                client.close()

    def describe(self, query: exp.Query, engine: Engine | None = None) -> list[SourceColumn]:
        sql = self.source_sql(self.probe_query(query))
        with self.errors(query):
            client = self._client()
            try:
                result = client.query(sql)
                names = list(result.column_names)
                types = [t.name for t in result.column_types]
            finally:
                client.close()
        return [SourceColumn(n, from_clickhouse(t), t) for n, t in zip(names, types, strict=True)]

    def fetch(self, query: exp.Query, columns: Sequence[SourceColumn]) -> pa.Table:
        sql = self.source_sql(query)
        with self.errors(query):
            client = self._client()
            try:
                table: pa.Table = client.query_arrow(sql)
            finally:
                client.close()
        return table
