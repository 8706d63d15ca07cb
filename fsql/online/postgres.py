"""PostgreSQL online store: one table per feature-group version,
``(k text PRIMARY KEY, ver text, v text)``, written with a conditional
``INSERT ... ON CONFLICT DO UPDATE ... WHERE ver <= excluded.ver`` over
``unnest`` arrays (one statement per 10,000 rows), read with prepared
statements (``k = ANY($1)``).

A pool of up to 8 connections (one per concurrent caller); a connection
that fails is dropped and the call raises :class:`OnlineStoreUnavailable`,
the next call connects again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from fsql.online.base import (
    Codec,
    OnlineStore,
    OnlineStoreUnavailable,
    Pool,
    Row,
    physical_name,
    split_prefix,
)

CHUNK = 10_000
POOL_SIZE = 8


class PostgresOnlineStore(OnlineStore):
    kind = "postgresql"

    def __init__(self, url: str) -> None:
        url, self.prefix = split_prefix(url)
        if url.startswith("postgresql+psycopg://"):
            url = "postgresql://" + url.split("://", 1)[1]
        self.url = url
        self._pool: Pool[psycopg.Connection[Any]] = Pool(
            self._connect, lambda c: c.close(), size=POOL_SIZE
        )
        self._tables: set[str] = set()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        except psycopg.Error as e:
            raise OnlineStoreUnavailable(
                f"cannot connect to the PostgreSQL online store: {e}".strip(),
                hint="Check that the server is up; `fsql materialize` repairs missed commits.",
            ) from None
        conn.prepare_threshold = 0  # every statement prepared (server-side plan reuse)
        return conn

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection((psycopg.OperationalError, psycopg.InterfaceError)) as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as e:
            raise OnlineStoreUnavailable(
                f"the PostgreSQL online store failed: {str(e).strip()}",
                hint="Check that the server is up; `fsql materialize` repairs missed commits.",
            ) from None

    def _name(self, table: str) -> sql.Identifier:
        return sql.Identifier(physical_name(self.prefix, table, 63))

    def _ensure(self, conn: psycopg.Connection[Any], table: str) -> sql.Identifier:
        ident = self._name(table)
        if table not in self._tables:
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (k text PRIMARY KEY, "
                    'ver text COLLATE "C" NOT NULL, v text NOT NULL)'
                ).format(ident)
            )
            self._tables.add(table)
        return ident

    def _insert(
        self,
        conn: psycopg.Connection[Any],
        ident: sql.Identifier,
        rows: Sequence[Row],
        conditional: bool,
    ) -> None:
        stmt = sql.SQL(
            "INSERT INTO {t} AS cur (k, ver, v) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) "
            "ON CONFLICT (k) DO UPDATE SET ver = excluded.ver, v = excluded.v"
            + (" WHERE cur.ver <= excluded.ver" if conditional else "")
        ).format(t=ident)
        for i in range(0, len(rows), CHUNK):
            part = rows[i : i + CHUNK]
            conn.execute(stmt, ([r[0] for r in part], [r[1] for r in part], [r[2] for r in part]))

    def write(self, table: str, rows: Sequence[Row], codec: Codec | None = None) -> None:
        with self._session() as conn:
            ident = self._ensure(conn, table)
            with conn.transaction():
                self._insert(conn, ident, rows, conditional=True)

    def replace(self, table: str, rows: Sequence[Row], codec: Codec | None = None) -> None:
        with self._session() as conn:
            ident = self._ensure(conn, table)
            with conn.transaction():
                conn.execute(sql.SQL("DELETE FROM {}").format(ident))
                self._insert(conn, ident, rows, conditional=False)

    def get(self, table: str, keys: Sequence[str]) -> list[str | None]:
        with self._session() as conn:
            ident = self._ensure(conn, table)
            if len(keys) == 1:
                found = dict(
                    conn.execute(
                        sql.SQL("SELECT k, v FROM {} WHERE k = %s").format(ident), (keys[0],)
                    ).fetchall()
                )
            else:
                found = dict(
                    conn.execute(
                        sql.SQL("SELECT k, v FROM {} WHERE k = ANY(%s::text[])").format(ident),
                        (list(keys),),
                    ).fetchall()
                )
        return [found.get(k) for k in keys]

    batched_reads = True

    def get_groups(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[str | None]]:
        if len(requests) == 1:
            return [self.get(*requests[0])]
        with self._session() as conn:
            parts = []
            params: list[Any] = []
            for i, (table, keys) in enumerate(requests):
                ident = self._ensure(conn, table)
                parts.append(
                    sql.SQL("SELECT {i}, k, v FROM {t} WHERE k = ANY(%s::text[])").format(
                        i=sql.Literal(i), t=ident
                    )
                )
                params.append(list(keys))
            rows = conn.execute(sql.SQL(" UNION ALL ").join(parts), params).fetchall()
        found: list[dict[str, str]] = [{} for _ in requests]
        for i, k, v in rows:
            found[i][k] = v
        return [[f.get(k) for k in keys] for f, (_, keys) in zip(found, requests, strict=True)]

    def scan(self, table: str) -> Iterator[Row]:
        with self._session() as conn:
            ident = self._ensure(conn, table)
            rows = conn.execute(sql.SQL("SELECT k, ver, v FROM {}").format(ident)).fetchall()
        yield from rows

    def drop(self, table: str) -> None:
        with self._session() as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._name(table)))
            self._tables.discard(table)

    def close(self) -> None:
        self._pool.close()

    def backend_pid(self) -> int:
        """The server process of our connection (tests cut it to simulate a
        server going away)."""
        with self._session() as conn:
            return int(conn.info.backend_pid)

    def reader(self, codec: Codec) -> Callable[[Any], tuple[Any, ...] | None]:
        return lambda prim: self.lookup_one(codec, prim)
