"""MariaDB / MySQL online store (PyMySQL): one InnoDB table per
feature-group version, ``(k VARBINARY PRIMARY KEY, ver BINARY(32), v
LONGBLOB)``; binary columns so keys compare byte for byte (no collation
folding 'A' into 'a').

The conditional upsert is ``INSERT ... ON DUPLICATE KEY UPDATE v = IF(ver <=
VALUES(ver), VALUES(v), v), ver = IF(...)``: MariaDB assigns left to right,
so ``v`` is decided on the old ``ver`` before ``ver`` changes. PyMySQL sends
the rows as multi-row INSERTs with escaped parameters. A pool of up to 8
connections (one per concurrent caller); a failed one is dropped and the
call raises :class:`OnlineStoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql
from sqlglot import exp

from fsql.online.base import (
    Codec,
    OnlineStore,
    OnlineStoreUnavailable,
    Pool,
    Row,
    physical_name,
    split_prefix,
)

CHUNK = 2_000
POOL_SIZE = 8


def _q(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql("mysql")


class MySQLOnlineStore(OnlineStore):
    kind = "mariadb"

    def __init__(self, url: str) -> None:
        url, self.prefix = split_prefix(url)
        parts = urlsplit(url)
        self.params: dict[str, Any] = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 3306,
            "user": unquote(parts.username or "root"),
            "password": unquote(parts.password or ""),
            "database": parts.path.lstrip("/") or "test",
            "charset": "utf8mb4",
            "autocommit": True,
            "connect_timeout": 5,
            "read_timeout": 30,
            "write_timeout": 30,
        }
        self._pool: Pool[Any] = Pool(self._connect, lambda c: c.close(), size=POOL_SIZE)
        self._tables: set[str] = set()

    def _connect(self) -> Any:
        try:
            return pymysql.connect(**self.params)
        except pymysql.MySQLError as e:
            raise OnlineStoreUnavailable(
                f"cannot connect to the MariaDB online store: {e}",
                hint="Check that the server is up; `fsql materialize` repairs missed commits.",
            ) from None

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        broken = (pymysql.OperationalError, pymysql.InterfaceError, OSError)
        try:
            with self._pool.connection(broken) as conn, conn.cursor() as cur:
                yield cur
        except broken as e:
            raise OnlineStoreUnavailable(
                f"the MariaDB online store failed: {e}",
                hint="Check that the server is up; `fsql materialize` repairs missed commits.",
            ) from None

    def _ensure(self, cur: Any, table: str) -> str:
        q = _q(physical_name(self.prefix, table, 64))
        if table not in self._tables:
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {q} (k VARBINARY(700) NOT NULL PRIMARY KEY, "
                "ver BINARY(32) NOT NULL, v LONGBLOB NOT NULL) ENGINE=InnoDB"
            )
            self._tables.add(table)
        return q

    def _insert(self, cur: Any, q: str, rows: Sequence[Row], conditional: bool) -> None:
        if conditional:
            update = (
                "v = IF(ver <= VALUES(ver), VALUES(v), v), "
                "ver = IF(ver <= VALUES(ver), VALUES(ver), ver)"
            )
        else:
            update = "v = VALUES(v), ver = VALUES(ver)"
        stmt = f"INSERT INTO {q} (k, ver, v) VALUES (%s, %s, %s) ON DUPLICATE KEY UPDATE {update}"
        for i in range(0, len(rows), CHUNK):
            cur.executemany(stmt, rows[i : i + CHUNK])

    def write(self, table: str, rows: Sequence[Row], codec: Codec | None = None) -> None:
        with self._cursor() as cur:
            q = self._ensure(cur, table)
            cur.execute("START TRANSACTION")
            try:
                self._insert(cur, q, rows, conditional=True)
                cur.execute("COMMIT")
            except pymysql.MySQLError:
                cur.connection.rollback()
                raise

    def replace(self, table: str, rows: Sequence[Row], codec: Codec | None = None) -> None:
        with self._cursor() as cur:
            q = self._ensure(cur, table)
            cur.execute("START TRANSACTION")
            try:
                cur.execute(f"DELETE FROM {q}")
                self._insert(cur, q, rows, conditional=False)
                cur.execute("COMMIT")
            except pymysql.MySQLError:
                cur.connection.rollback()
                raise

    def get(self, table: str, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        with self._cursor() as cur:
            q = self._ensure(cur, table)
            marks = ", ".join(["%s"] * len(keys))
            cur.execute(f"SELECT k, v FROM {q} WHERE k IN ({marks})", list(keys))
            found = {bytes(k).decode(): bytes(v).decode() for k, v in cur.fetchall()}
        return [found.get(k) for k in keys]

    batched_reads = True

    def get_groups(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[str | None]]:
        live = [(i, t, keys) for i, (t, keys) in enumerate(requests) if keys]
        found: list[dict[str, str]] = [{} for _ in requests]
        if live:
            with self._cursor() as cur:
                parts = []
                params: list[Any] = []
                for i, table, keys in live:
                    q = self._ensure(cur, table)
                    marks = ", ".join(["%s"] * len(keys))
                    parts.append(f"SELECT {int(i)} AS g, k, v FROM {q} WHERE k IN ({marks})")
                    params.extend(keys)
                cur.execute(" UNION ALL ".join(parts), params)
                for i, k, v in cur.fetchall():
                    found[int(i)][bytes(k).decode()] = bytes(v).decode()
        return [[f.get(k) for k in keys] for f, (_, keys) in zip(found, requests, strict=True)]

    def scan(self, table: str) -> Iterator[Row]:
        with self._cursor() as cur:
            q = self._ensure(cur, table)
            cur.execute(f"SELECT k, ver, v FROM {q}")
            rows = [
                (bytes(k).decode(), bytes(ver).decode(), bytes(v).decode())
                for k, ver, v in cur.fetchall()
            ]
        yield from rows

    def drop(self, table: str) -> None:
        with self._cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {_q(physical_name(self.prefix, table, 64))}")
            self._tables.discard(table)

    def close(self) -> None:
        self._pool.close()

    def connection_id(self) -> int:
        """Our server thread id (tests KILL it to simulate a server going away)."""
        with self._cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            return int(cur.fetchone()[0])
