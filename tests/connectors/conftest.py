"""Fixtures for connector tests: unique tables in the real local PostgreSQL
and MariaDB, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from service_checks import require_service


class Source:
    """A live connection plus the tables a test made (dropped at the end)."""

    def __init__(self, conn: Any, kind: str) -> None:
        self.conn = conn
        self.kind = kind
        self.objects: list[tuple[str, str]] = []

    def name(self, prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:10]}"

    def table(self, prefix: str, ddl: str, rows: str | None = None) -> str:
        """Create ``<prefix>_<random>`` with columns ``ddl``; return its name."""
        name = self.name(prefix)
        self.execute(f"CREATE TABLE {name} ({ddl})")
        self.objects.append(("TABLE", name))
        if rows:
            self.execute(f"INSERT INTO {name} VALUES {rows}")
        return name

    def view(self, prefix: str, query: str) -> str:
        name = self.name(prefix)
        self.execute(f"CREATE VIEW {name} AS {query}")
        self.objects.insert(0, ("VIEW", name))
        return name

    def execute(self, sql: str, params: Any = None) -> None:
        if self.kind == "postgres":
            self.conn.execute(sql, params)
        else:
            with self.conn.cursor() as cur:
                cur.execute(sql, params)
            self.conn.commit()

    def cleanup(self) -> None:
        for kind, name in self.objects:
            try:
                self.execute(f"DROP {kind} IF EXISTS {name}")
            except Exception:
                pass


@pytest.fixture
def pg() -> Iterator[Source]:
    require_service("postgres")
    import psycopg

    conn = psycopg.connect(
        host="127.0.0.1", port=5432, user="postgres", dbname="test", autocommit=True
    )
    src = Source(conn, "postgres")
    try:
        yield src
    finally:
        src.cleanup()
        conn.close()


@pytest.fixture
def maria() -> Iterator[Source]:
    require_service("mariadb")
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database="test")
    src = Source(conn, "mysql")
    try:
        yield src
    finally:
        src.cleanup()
        conn.close()
