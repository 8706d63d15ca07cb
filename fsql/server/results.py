"""A statement's result as a session sends it: rows taken a batch at a time.

A query's result streams from the engine (:meth:`fsql.api.Store.sql_stream`):
:class:`StreamRows` reads one record batch at a time in an engine thread and
starts reading the next one while the current one is encoded and written, so
a session holds at most the batch it sends, the one read ahead and what the
socket has not taken yet (the writer's drain is the back-pressure).
Everything else (constants, DDL status) is a :class:`TableRows`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import pyarrow as pa

from fsql.connectors.engine import CANCELED, CancelScope, QueryCanceled
from fsql.errors import FsqlError

# rows per engine batch a session asks for (chDB hands out whole blocks of
# about 65k rows)
STREAM_ROWS = 32768
# how much one read from the engine takes at most (the batch that crosses
# it included), and how much a stream reads ahead of what it has sent: the
# next read starts while less than BUFFER_BYTES wait to be sent
READ_BYTES = 4 << 20
BUFFER_BYTES = 16 << 20


class Rows:
    """Rows a session sends in order; ``take`` gives the next ones."""

    schema: pa.Schema

    @property
    def num_columns(self) -> int:
        return len(self.schema)

    async def take(self, n: int | None, canceled: asyncio.Event) -> pa.Table | None:
        """Up to ``n`` rows (None: the next batch, whatever its size); None
        at the end."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether :meth:`take` would answer without waiting for the engine."""
        return True

    def release(self) -> None:
        """Give back what the rows hold (an engine session); safe to call
        anywhere, more than once."""


class TableRows(Rows):
    """A materialized result."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.schema = table.schema
        self.pos = 0

    async def take(self, n: int | None, canceled: asyncio.Event) -> pa.Table | None:
        left = self.table.num_rows - self.pos
        if left <= 0:
            return None
        size = left if n is None else min(n, left)
        out = self.table.slice(self.pos, size)
        self.pos += size
        return out


class Stopper(Protocol):
    async def stop(
        self, scope: CancelScope, future: concurrent.futures.Future[Any], waiter: Any
    ) -> None: ...


class StreamRows(Rows):
    """A result streaming from the engine. Reads run in ``pool`` (the
    server's engine threads); a cancel while one runs stops the engine
    statement through ``server.stop``."""

    def __init__(
        self,
        server: Stopper,
        pool: concurrent.futures.Executor,
        reader: pa.RecordBatchReader | None,
        schema: pa.Schema,
        batches: list[pa.RecordBatch],
        scope: CancelScope,
    ) -> None:
        self._server = server
        self._pool = pool
        self._reader = reader  # None once read to its end, failed or released
        self.schema = schema
        self._buffer: deque[pa.RecordBatch] = deque(batches)  # read, not yet sent
        self._ahead: concurrent.futures.Future[tuple[list[pa.RecordBatch], bool]] | None = None
        self._scope = scope

    async def take(self, n: int | None, canceled: asyncio.Event) -> pa.Table | None:
        self._collect()
        if not self._buffer and not await self._next(canceled):
            return None
        head = self._buffer.popleft()
        if n is not None and head.num_rows > n:
            self._buffer.appendleft(head.slice(n))
            head = head.slice(0, n)
        self._read_ahead()  # the engine works while these rows are sent
        return pa.Table.from_batches([head])

    def ready(self) -> bool:
        ahead = self._ahead
        return bool(self._buffer) or self._reader is None or (ahead is not None and ahead.done())

    def _read_ahead(self) -> None:
        """Start a read unless one is under way or BUFFER_BYTES are read
        and not sent yet."""
        if self._reader is None or self._ahead is not None:
            return
        if sum(b.nbytes for b in self._buffer) < BUFFER_BYTES:
            self._ahead = self._pool.submit(read_chunk, self._reader)

    def _collect(self) -> None:
        """The batches of a read that has succeeded join the buffer (a
        failed one is reported once the rows before it are sent)."""
        future = self._ahead
        if future is None or not future.done() or future.exception() is not None:
            return
        self._ahead = None
        self._add(*future.result())

    def _add(self, batches: list[pa.RecordBatch], ended: bool) -> None:
        if ended:
            self._reader = None  # read to its end: the session is back
        self._buffer.extend(b for b in batches if b.num_rows)

    async def _next(self, canceled: asyncio.Event) -> bool:
        """Wait for the read under way (or start one); False at the end."""
        while not self._buffer:
            future, self._ahead = self._ahead, None
            if future is None:
                if self._reader is None:
                    return False
                future = self._pool.submit(read_chunk, self._reader)
            if not future.done():
                waiter: asyncio.Future[Any] = asyncio.wrap_future(future)
                stop: asyncio.Future[Any] = asyncio.ensure_future(canceled.wait())
                try:
                    await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stop.cancel()
                if not waiter.done():  # canceled while the engine works on it
                    await self._server.stop(self._scope, future, waiter)
                    self.release()
                    raise QueryCanceled(CANCELED)
            try:
                batches, ended = future.result()
            except BaseException:
                self._reader = None  # a failed stream has given its session back
                raise
            self._add(batches, ended)
        return True

    def release(self) -> None:
        self._buffer.clear()
        self._reader = None  # the last reference: the engine releases its session
        ahead, self._ahead = self._ahead, None
        if ahead is not None and not ahead.done() and not ahead.cancel():
            # a read is under way (it holds the reader until it returns):
            # stop the statement, so that it returns now
            _in_thread(self._scope.cancel)


def read_batch(reader: pa.RecordBatchReader) -> pa.RecordBatch | None:
    """The next batch of ``reader``, None at its end (run in an engine thread)."""
    try:
        return reader.read_next_batch()
    except StopIteration:
        return None
    except FsqlError as e:
        # without the frames it came through: they hold the readers of the
        # layers below, which release the engine session once dropped
        raise e.with_traceback(None) from None
    except Exception as e:  # a library failure: still an SQLSTATE
        raise FsqlError(f"{type(e).__name__}: {e}", sqlstate="XX000") from None


def read_chunk(reader: pa.RecordBatchReader) -> tuple[list[pa.RecordBatch], bool]:
    """The next batches of ``reader``, up to READ_BYTES (at least one), and
    whether it ended (run in an engine thread). Reading several blocks in
    one go lets the engine work in bursts rather than a block at a time."""
    batches: list[pa.RecordBatch] = []
    size = 0
    while size < READ_BYTES:
        batch = read_batch(reader)
        if batch is None:
            return batches, True
        batches.append(batch)
        size += batch.nbytes
    return batches, False


def open_batches(reader: pa.RecordBatchReader) -> tuple[list[pa.RecordBatch], bool]:
    """The batches a stream is opened with, and whether the stream ended:
    the first batch, and when it is smaller than a full one (the engine's
    last, usually) the read after it, so a small result is complete in the
    call that opened it (run in an engine thread)."""
    first = read_batch(reader)
    if first is None:
        return [], True
    if first.num_rows >= STREAM_ROWS:
        return [first], False
    second = read_batch(reader)
    if second is None:
        return [first], True
    return [first, second], False


# stops of streams nobody waits for (long-lived threads, as for every chDB call)
_STOPS = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="fsql-stop")


def _in_thread(fn: Callable[[], object]) -> None:
    _STOPS.submit(fn)
