"""The embedded online store: SQLite (WAL) in the store folder for
durability, with a hot in-memory index in front of it.

Why this design (measured in ``benchmarks/online.py``): a serving lookup in
Python is dominated by per-call interpreter work, not by storage. A plain
sqlite3 primary-key lookup costs ~12 µs of which most is statement binding,
stepping and building the result row; decoding it into typed values adds more.
Here every feature-group table is loaded once into a dict (primary key ->
decoded value tuple), so a lookup is one dict probe per feature group
(~0.1 µs) and values are already Python objects; SQLite keeps the rows across
restarts and is the single writer path (``INSERT ... ON CONFLICT DO UPDATE
... WHERE excluded.ver >= ver``, so ordering by event time then commit is
enforced by the same rule as on every server backend). The embedded store
belongs to one process (the store lock), so the in-memory copy cannot go
stale behind our back: every write updates SQLite, then the dict, under one
lock.

A table with more rows than ``cache_rows`` is not loaded whole: lookups then
go to SQLite (prepared statement, ~10 µs) and their results are cached until
the cache is full, at which point it is emptied.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlglot import exp

from fsql.online.base import Codec, OnlineStore, Row, to_array

DEFAULT_CACHE_ROWS = 5_000_000
_MISSING = object()
NOT_READY = object()  # peek(): answering needs I/O (the table is not held in memory)


def _q(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql("sqlite")


class _Cache:
    __slots__ = ("arrow", "complete", "pos", "rows")

    def __init__(self) -> None:
        self.rows: dict[Any, tuple[str, tuple[Any, ...]]] = {}
        self.complete = False
        # columnar copy for batch lookups (built on first use): the value
        # columns, and the row of each key in them
        self.arrow: pa.Table | None = None
        self.pos: dict[Any, int] = {}


class EmbeddedOnlineStore(OnlineStore):
    kind = "embedded"

    def __init__(self, path: str | Path, *, cache_rows: int = DEFAULT_CACHE_ROWS) -> None:
        self.path = Path(path)
        self.cache_rows = cache_rows
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, cached_statements=256
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._tables: set[str] = set()
        self._caches: dict[str, _Cache] = {}

    # tables ---------------------------------------------------------------

    def _ensure(self, table: str) -> str:
        q = _q(table)
        if table not in self._tables:
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {q} "
                "(k TEXT PRIMARY KEY, ver TEXT NOT NULL, v TEXT NOT NULL) WITHOUT ROWID"
            )
            self._tables.add(table)
        return q

    def drop(self, table: str) -> None:
        with self._lock:
            self._conn.execute(f"DROP TABLE IF EXISTS {_q(table)}")
            self._tables.discard(table)
            self._caches.pop(table, None)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            self._caches.clear()

    # writes ---------------------------------------------------------------

    def write(self, table: str, rows: Sequence[Row], codec: Codec | None = None) -> None:
        with self._lock:
            q = self._ensure(table)
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    f"INSERT INTO {q} (k, ver, v) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE "
                    f"SET ver = excluded.ver, v = excluded.v WHERE excluded.ver >= {q}.ver",
                    rows,
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            cache = self._caches.get(table)
            if cache is None:
                return
            if codec is None:
                self._caches.pop(table, None)
                return
            cached = cache.rows
            changed = []
            for k, ver, v in rows:
                prim = codec.prim_of_string(k)
                cur = cached.get(prim)
                if (cur is None and cache.complete) or (cur is not None and ver >= cur[0]):
                    value = codec.decode(v)
                    cached[prim] = (ver, value)
                    changed.append((prim, value))
            if cache.arrow is not None and changed:
                self._append(cache, codec, changed)

    def replace(self, table: str, rows: Sequence[Row], codec: Codec | None = None) -> None:
        with self._lock:
            q = self._ensure(table)
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(f"DELETE FROM {q}")
                self._conn.executemany(f"INSERT INTO {q} (k, ver, v) VALUES (?, ?, ?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            cache = self._caches.get(table)
            if cache is not None:
                # keep the same dict object: readers hold a reference to it
                cache.rows.clear()
                cache.complete = False
                cache.arrow = None
                cache.pos = {}
                if codec is not None:
                    self._fill(cache, table, codec)

    # reads ----------------------------------------------------------------

    def get(self, table: str, keys: Sequence[str]) -> list[str | None]:
        with self._lock:
            q = self._ensure(table)
            out: list[str | None] = []
            for k in keys:
                row = self._conn.execute(f"SELECT v FROM {q} WHERE k = ?", (k,)).fetchone()
                out.append(None if row is None else row[0])
            return out

    def scan(self, table: str) -> Iterator[Row]:
        with self._lock:
            q = self._ensure(table)
            rows = self._conn.execute(f"SELECT k, ver, v FROM {q}").fetchall()
        yield from rows

    def count(self, table: str) -> int:
        with self._lock:
            q = self._ensure(table)
            return int(self._conn.execute(f"SELECT count(*) FROM {q}").fetchone()[0])

    def _fill(self, cache: _Cache, table: str, codec: Codec) -> None:
        q = self._ensure(table)
        if self.count(table) > self.cache_rows:
            cache.complete = False
            return
        prim_of, decode = codec.prim_of_string, codec.decode
        cache.rows.update(
            (prim_of(k), (ver, decode(v)))
            for k, ver, v in self._conn.execute(f"SELECT k, ver, v FROM {q}")
        )
        cache.complete = True

    def _cache(self, codec: Codec) -> _Cache:
        cache = self._caches.get(codec.table)
        if cache is None:
            with self._lock:
                cache = self._caches.get(codec.table)
                if cache is None:
                    cache = _Cache()
                    self._fill(cache, codec.table, codec)
                    self._caches[codec.table] = cache
        return cache

    def _fetch(self, cache: _Cache, codec: Codec, prim: Any) -> tuple[Any, ...] | None:
        with self._lock:
            q = self._ensure(codec.table)
            row = self._conn.execute(
                f"SELECT ver, v FROM {q} WHERE k = ?", (codec.key_string(prim),)
            ).fetchone()
            if row is None:
                return None
            if len(cache.rows) >= self.cache_rows:
                cache.rows.clear()
            value = codec.decode(row[1])
            cache.rows[prim] = (row[0], value)
            return value

    def lookup_one(self, codec: Codec, prim: Any) -> tuple[Any, ...] | None:
        cache = self._cache(codec)
        hit = cache.rows.get(prim)
        if hit is not None:
            return hit[1]
        if cache.complete:
            return None
        return self._fetch(cache, codec, prim)

    def peek(self, codec: Codec, prim: Any) -> Any:
        """:meth:`lookup_one` when it needs no I/O and no lock (the row is in
        memory, or the whole table is and lacks the key); else NOT_READY. For
        callers that must not block, such as the server's event loop."""
        cache = self._caches.get(codec.table)
        if cache is None:
            return NOT_READY
        hit = cache.rows.get(prim)
        if hit is not None:
            return hit[1]
        return None if cache.complete else NOT_READY

    def lookup(self, codec: Codec, prims: Sequence[Any]) -> list[tuple[Any, ...] | None]:
        cache = self._cache(codec)
        get = cache.rows.get
        out: list[tuple[Any, ...] | None] = []
        for p in prims:
            hit = get(p)
            if hit is not None:
                out.append(hit[1])
            elif cache.complete:
                out.append(None)
            else:
                out.append(self._fetch(cache, codec, p))
        return out

    # the columnar copy ----------------------------------------------------

    def _build_arrow(self, cache: _Cache, codec: Codec) -> pa.Table:
        names = codec.value_names
        types = [t.arrow for t in codec.value_types]
        values = [v[1] for v in cache.rows.values()]
        columns = list(zip(*values, strict=True)) if values else [() for _ in names]
        cache.arrow = pa.Table.from_arrays(
            [to_array(list(c), t) for c, t in zip(columns, types, strict=True)], names=names
        )
        cache.pos = {p: i for i, p in enumerate(cache.rows)}
        return cache.arrow

    def _append(self, cache: _Cache, codec: Codec, changed: list[tuple[Any, Any]]) -> None:
        assert cache.arrow is not None
        types = [t.arrow for t in codec.value_types]
        new = pa.Table.from_arrays(
            [to_array([v[i] for _, v in changed], t) for i, t in enumerate(types)],
            names=codec.value_names,
        )
        base = cache.arrow.num_rows
        arrow = pa.concat_tables([cache.arrow, new])
        for j, (prim, _) in enumerate(changed):
            cache.pos[prim] = base + j
        if arrow.num_rows > 2 * len(cache.rows) + 1024:
            cache.arrow = None  # mostly superseded rows: rebuild on next use
            cache.pos = {}
        elif arrow.column(0).num_chunks > 64:
            cache.arrow = arrow.combine_chunks()
        else:
            cache.arrow = arrow

    def take(self, codec: Codec, prims: Sequence[Any]) -> pa.Table | None:
        """The value columns of ``prims`` (NULL rows for unknown keys), from
        the columnar copy; None when the table is not held whole in memory."""
        if not codec.value_names:
            return None
        cache = self._cache(codec)
        if not cache.complete:
            return None
        with self._lock:
            arrow = cache.arrow
            if arrow is None:
                arrow = self._build_arrow(cache, codec)
            get = cache.pos.get
            index = [get(p) for p in prims]
        return arrow.take(pa.array(index, type=pa.int64()))

    def reader(self, codec: Codec) -> Callable[[Any], tuple[Any, ...] | None]:
        """A lookup function bound to one table (the serving hot path)."""
        cache = self._cache(codec)
        get = cache.rows.get
        fetch = self._fetch

        def read(prim: Any) -> tuple[Any, ...] | None:
            hit = get(prim)
            if hit is not None:
                return hit[1]
            if cache.complete:
                return None
            return fetch(cache, codec, prim)

        return read
