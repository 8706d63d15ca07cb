# mypy: disable-error-code="override,assignment"
"""SQLAlchemy dialect ``fsql``: ``create_engine("fsql:///path/to/store")``.

The SQL is PostgreSQL (the FSQL dialect's base), so the dialect derives from
SQLAlchemy's PostgreSQL dialect for compilation, and answers reflection from
the fsql catalog in-process: each feature group is a table (latest as ``fg``,
each version as ``fg_v<N>``) in schema ``public``, features are columns with
their descriptions as comments, the primary key is a constraint.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import types as sqltypes
from sqlalchemy.dialects.postgresql import ARRAY, NUMERIC, TIMESTAMP
from sqlalchemy.dialects.postgresql.base import PGDialect, ischema_names
from sqlalchemy.engine import default, reflection

SCHEMA = "public"


def _sa_type(name: str) -> Any:
    if name.endswith("[]"):
        return ARRAY(_sa_type(name[:-2]))
    m = re.fullmatch(r"numeric\((\d+),(\d+)\)", name)
    if m:
        return NUMERIC(int(m.group(1)), int(m.group(2)))
    if name == "timestamptz":
        return TIMESTAMP(timezone=True)
    if name == "timestamp":
        return TIMESTAMP()
    cls = ischema_names.get(name)
    return cls() if cls is not None else sqltypes.NullType()


class FsqlDialect(PGDialect):
    name = "fsql"
    driver = "fsql"
    supports_statement_cache = True
    supports_sane_rowcount = False
    supports_sane_multi_rowcount = False
    supports_native_boolean = True
    default_paramstyle = "pyformat"
    postfetch_lastrowid = False
    implicit_returning = False
    insert_returning = False
    update_returning = False
    delete_returning = False

    @classmethod
    def import_dbapi(cls) -> Any:
        from fsql import dbapi

        return dbapi

    def create_connect_args(self, url: Any) -> tuple[list[Any], dict[str, Any]]:
        path = url.database
        if not path:
            raise ValueError("the fsql URL needs a store path: fsql:///path/to/store")
        return [path], dict(url.query)

    # no server to ask ---------------------------------------------------------------

    def initialize(self, connection: Any) -> None:
        default.DefaultDialect.initialize(self, connection)
        self.supports_smallserial = True
        self._backslash_escapes = False
        self._supports_drop_index_concurrently = True
        self.supports_identity_columns = True

    def _get_server_version_info(self, connection: Any) -> tuple[int, ...]:
        return (18, 0)

    def _get_default_schema_name(self, connection: Any) -> str:
        return SCHEMA

    def _set_backslash_escapes(self, connection: Any) -> None:
        self._backslash_escapes = False

    def get_isolation_level(self, dbapi_connection: Any) -> str:
        return "AUTOCOMMIT"

    def get_default_isolation_level(self, dbapi_conn: Any) -> str:
        return "AUTOCOMMIT"

    def set_isolation_level(self, dbapi_connection: Any, level: str) -> None:
        pass

    def get_isolation_level_values(self, dbapi_conn: Any) -> list[str]:
        return ["AUTOCOMMIT"]

    def do_begin(self, dbapi_connection: Any) -> None:
        pass

    def do_rollback(self, dbapi_connection: Any) -> None:
        pass

    def do_commit(self, dbapi_connection: Any) -> None:
        pass

    def do_ping(self, dbapi_connection: Any) -> bool:
        return not dbapi_connection.closed

    # reflection from the fsql catalog -------------------------------------------------

    def _store(self, connection: Any) -> Any:
        return connection.connection.dbapi_connection.store

    def _tables(self, connection: Any) -> dict[str, Any]:
        store = self._store(connection)
        tables: dict[str, Any] = {}
        for fg in store.feature_groups():
            tables[fg.qualified_name] = fg
            current = tables.get(fg.name)
            if current is None or fg.version >= current.version:
                tables[fg.name] = fg
        return tables

    def _fg(self, connection: Any, table_name: str, schema: str | None) -> Any:
        from sqlalchemy.exc import NoSuchTableError

        if schema not in (None, SCHEMA):
            raise NoSuchTableError(table_name)
        fg = self._tables(connection).get(table_name)
        if fg is None:
            raise NoSuchTableError(table_name)
        return fg

    def get_schema_names(self, connection: Any, **kw: Any) -> list[str]:
        return [SCHEMA]

    def has_schema(self, connection: Any, schema_name: str, **kw: Any) -> bool:
        return schema_name == SCHEMA

    def has_table(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> bool:
        return schema in (None, SCHEMA) and table_name in self._tables(connection)

    def has_sequence(
        self, connection: Any, sequence_name: str, schema: str | None = None, **kw: Any
    ) -> bool:
        return False

    def has_type(
        self, connection: Any, type_name: str, schema: str | None = None, **kw: Any
    ) -> bool:
        return False

    @reflection.cache
    def get_table_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        if schema not in (None, SCHEMA):
            return []
        return sorted(self._tables(connection))

    def get_view_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        return []

    def get_materialized_view_names(
        self, connection: Any, schema: str | None = None, **kw: Any
    ) -> list[str]:
        return []

    def get_sequence_names(
        self, connection: Any, schema: str | None = None, **kw: Any
    ) -> list[str]:
        return []

    def get_temp_table_names(self, connection: Any, **kw: Any) -> list[str]:
        return []

    def get_temp_view_names(self, connection: Any, **kw: Any) -> list[str]:
        return []

    def get_enums(self, connection: Any, schema: str | None = None, **kw: Any) -> list[Any]:
        return []

    def get_domains(self, connection: Any, schema: str | None = None, **kw: Any) -> list[Any]:
        return []

    def get_columns(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[dict[str, Any]]:
        fg = self._fg(connection, table_name, schema)
        return [
            {
                "name": f.name,
                "type": _sa_type(f.type),
                "nullable": f.name not in fg.primary_key,
                "default": None,
                "autoincrement": False,
                "comment": f.description or None,
            }
            for f in fg.features
        ]

    def get_pk_constraint(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        fg = self._fg(connection, table_name, schema)
        return {"constrained_columns": list(fg.primary_key), "name": f"{table_name}_pkey"}

    def get_foreign_keys(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[Any]:
        self._fg(connection, table_name, schema)
        return []

    def get_indexes(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[Any]:
        self._fg(connection, table_name, schema)
        return []

    def get_unique_constraints(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[Any]:
        self._fg(connection, table_name, schema)
        return []

    def get_check_constraints(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[Any]:
        self._fg(connection, table_name, schema)
        return []

    def get_table_comment(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        fg = self._fg(connection, table_name, schema)
        return {"text": fg.description or None}

    def get_table_options(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        self._fg(connection, table_name, schema)
        return {}

    def get_view_definition(
        self, connection: Any, view_name: str, schema: str | None = None, **kw: Any
    ) -> str:
        from sqlalchemy.exc import NoSuchTableError

        raise NoSuchTableError(view_name)

    # the PostgreSQL dialect reflects many tables at once with pg_catalog queries;
    # the generic per-table fallback asks the methods above instead
    get_multi_columns = default.DefaultDialect.get_multi_columns
    get_multi_pk_constraint = default.DefaultDialect.get_multi_pk_constraint
    get_multi_foreign_keys = default.DefaultDialect.get_multi_foreign_keys
    get_multi_indexes = default.DefaultDialect.get_multi_indexes
    get_multi_unique_constraints = default.DefaultDialect.get_multi_unique_constraints
    get_multi_check_constraints = default.DefaultDialect.get_multi_check_constraints
    get_multi_table_comment = default.DefaultDialect.get_multi_table_comment
    get_multi_table_options = default.DefaultDialect.get_multi_table_options


dialect = FsqlDialect
