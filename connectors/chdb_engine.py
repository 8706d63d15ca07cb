"""The embedded engine: chDB, in-process ClickHouse over the store folder."""

from __future__ import annotations

import concurrent.futures
import fcntl
import itertools
import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from fsql.connectors.engine import (
    CANCELED,
    BeforeRun,
    CancelScope,
    QueryCanceled,
    TranslateError,
    before_run,
    current_scope,
    engine_error,
    input_ref,
)
from fsql.errors import EngineError, FsqlError, StoreInUse
from fsql.sql.engine_dialect import DIALECT

_OPEN_PATH: str | None = None
_OPEN_LOCK = threading.Lock()
# ``SET name = ...`` (not SETTINGS): session state every pooled session replays
_SET_RE = re.compile(r"\s*SET\s+`?([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


class _Conn:
    """One chDB session of the pool and the settings generation it has applied."""

    __slots__ = ("session", "version")

    def __init__(self, session: Any) -> None:
        self.session = session
        self.version = 0


def folder_holder(path: str | os.PathLike[str]) -> str | None:
    """The process id (as text) that has chDB open on the data folder
    ``path``, or None when no process has: chDB keeps ``<path>/status``
    locked (``flock``) while open, with ``PID: <pid>`` inside, and removes
    it on close."""
    try:
        fd = os.open(os.path.join(path, "status"), os.O_RDONLY)
    except OSError:
        return None  # never opened, or closed cleanly
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            found = re.search(r"PID:\s*(\d+)", os.read(fd, 256).decode(errors="replace"))
            return found.group(1) if found else "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _open_error(path: str, message: str) -> FsqlError:
    """The error for a folder chDB would not open: 55006 when another
    process has it open (the store lock normally says so first)."""
    holder = folder_holder(path)
    if holder is not None:
        return StoreInUse(
            f"the embedded offline store at {path} is in use by "
            + ("another process" if not holder.isdigit() else f"process {holder}"),
            detail=_clean(message),
            hint="One process owns an embedded store: connect to the process that has it "
            "open (`fsql serve`), or stop it first.",
        )
    return EngineError(f"could not open the embedded offline store at {path}: {_clean(message)}")


class ChdbEngine:
    """chDB holds one data folder per process; a second store in the same
    process must wait until the first is closed.

    A chDB session runs one statement at a time, but any number of sessions
    may be open on the folder and run at once. So the engine keeps a pool of
    sessions: each call takes an idle one (opening another when none is idle)
    and gives it back, and calls from different threads run concurrently.
    Session state is kept the same on every session: ``session_timezone`` is
    set when a session opens, and a ``SET`` statement run through the engine
    is replayed on each other session before its next statement. (Temporary
    tables would stay in one session; fsql does not create any here.)

    Statements run inside a :class:`fsql.connectors.engine.CancelScope` are
    tagged with a unique ``log_comment`` and can be stopped from another
    thread: the scope's cancel runs ``KILL QUERY`` for the tag on a separate
    control session (measured: the statement stops within ~0.1 s)."""

    name = "chdb"
    # hooks (see fsql.connectors.engine): set by fsql.bind.on_demand
    before_run: BeforeRun | None = None
    translate_error: TranslateError | None = None

    def __init__(self, path: str) -> None:
        global _OPEN_PATH
        from chdb import session

        with _OPEN_LOCK:
            if _OPEN_PATH is not None and path != _OPEN_PATH:
                raise StoreInUse(
                    f"this process already has the embedded store at {_OPEN_PATH!r} open",
                    hint="Close that store first (store.close()); chDB serves one folder "
                    "per process.",
                )
            try:
                first = session.Session(path)
            except Exception as e:  # chDB raises bare RuntimeError
                raise _open_error(path, str(e)) from None
            _OPEN_PATH = path
        self.path = path
        self._pool_lock = threading.Lock()
        self._idle: list[_Conn] = []
        self._busy: set[_Conn] = set()
        # SET statements run so far (by the first setting each names, latest
        # last) and their generation, which a session compares with its own
        self._sets: dict[str, str] = {}
        self._sets_version = 0
        self._control: Any = None  # the session KILL QUERY runs on
        self._control_lock = threading.Lock()
        self._tags = itertools.count(1)
        self._tag_prefix = f"fsql-{os.getpid()}-{id(self):x}-"
        self._closed = False
        self._idle.append(self._opened(first))
        # chDB resolves Python(name) by scanning interpreter frames; two threads
        # doing that at once read each other's inputs, so queries with Arrow
        # inputs are serialized.
        self._input_lock = threading.Lock()

    # the session pool ---------------------------------------------------------

    @staticmethod
    def _opened(session: Any) -> _Conn:
        # ClickHouse reads and prints naive DateTime64 in the session time zone;
        # pin it so naive timestamps mean UTC whatever the machine's zone is.
        session.query(f"SET session_timezone = '{NAIVE_TZ}'")
        return _Conn(session)

    def _open_session(self) -> Any:
        from chdb import session

        return session.Session(self.path)

    def _take(self) -> _Conn:
        with self._pool_lock:
            if self._closed:
                raise engine_error(self, "the store is closed", "")
            conn = self._idle.pop() if self._idle else None
            if conn is not None:
                self._busy.add(conn)
        if conn is None:
            conn = self._opened(self._open_session())
            with self._pool_lock:
                self._busy.add(conn)
        while conn.version != self._sets_version:
            with self._pool_lock:
                version, sets = self._sets_version, list(self._sets.values())
            for sql in sets:
                try:
                    conn.session.query(sql, "Null")
                except Exception as e:
                    self._give_back(conn)
                    raise engine_error(self, _clean(str(e)), sql) from None
            conn.version = version
        return conn

    def _give_back_streamed(self, conn: _Conn) -> None:
        """Give back a session a stream used, with the Arrow compression
        other statements need again (see ``_PLAIN_ARROW``); one that cannot
        have it back is closed."""
        try:
            conn.session.query(f"SET {_PLAIN_ARROW} = DEFAULT", "Null")
        except Exception:
            with self._pool_lock:
                self._busy.discard(conn)
            try:
                conn.session.close()
            except Exception:
                pass
            return
        self._give_back(conn)

    def _give_back(self, conn: _Conn) -> None:
        with self._pool_lock:
            self._busy.discard(conn)
            if not self._closed:
                self._idle.append(conn)
                return
        conn.session.close()  # closed while it ran

    @contextmanager
    def _session(self) -> Iterator[_Conn]:
        conn = self._take()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _remember_set(self, sql: str) -> None:
        m = _SET_RE.match(sql)
        if m is None or ";" in sql.rstrip().rstrip(";"):
            return
        with self._pool_lock:
            key = m.group(1).lower()
            self._sets.pop(key, None)
            self._sets[key] = sql
            self._sets_version += 1

    # cancel -------------------------------------------------------------------

    def _kill(self, tag: str) -> None:
        with self._control_lock:
            if self._closed:
                return
            if self._control is None:
                self._control = self._open_session()
            self._control.query(f"KILL QUERY WHERE Settings['log_comment'] = '{tag}' ASYNC", "Null")

    # statements ---------------------------------------------------------------

    def _run(self, sql: str, fmt: str, inputs: Sequence[pa.Table] = ()) -> object:
        scope = current_scope()
        if scope is not None:
            scope.check()
        with self._session() as conn:
            tag = None
            if scope is not None:
                tag = self._tag_prefix + str(next(self._tags))
                scope.enter(tag, self._kill)
            try:
                if tag is not None:
                    conn.session.query(f"SET log_comment = '{tag}'", "Null")
                result = self._call(conn.session, sql, fmt, *inputs)
            except Exception as e:  # chDB raises bare RuntimeError/ChdbError
                _flush(conn.session)
                if scope is not None and scope.canceled:
                    raise QueryCanceled(CANCELED) from None
                raise engine_error(self, _clean(str(e)), sql) from None
            finally:
                if tag is not None:
                    assert scope is not None
                    scope.leave(tag)
        self._remember_set(sql)
        return result

    @staticmethod
    def _call(
        session: Any,
        sql: str,
        fmt: str,
        fsql_input_0: pa.Table | None = None,
        fsql_input_1: pa.Table | None = None,
        fsql_input_2: pa.Table | None = None,
        fsql_input_3: pa.Table | None = None,
    ) -> object:
        # The parameters above are the names Python(fsql_input_N) resolves to.
        return session.query(sql, fmt)

    def query(self, sql: str, inputs: Sequence[pa.Table] = ()) -> pa.Table:
        before_run(self, sql)
        if inputs:
            with self._input_lock:
                result = self._run(sql, "ArrowTable", inputs)
        else:
            result = self._run(sql, "ArrowTable")
        assert isinstance(result, pa.Table)
        return naive_timestamps(result)

    def stream(self, sql: str, batch_rows: int = 65536) -> pa.RecordBatchReader:
        """Stream a query's result in record batches of whole engine blocks
        (joined up to ``batch_rows`` rows when smaller). It returns once the
        first block is there (an aggregate has run by then). The pooled
        session stays taken until the reader is exhausted, fails, or is
        released (its last reference dropped: ``reader.close()`` does not
        release it). The statement is tagged like any other: inside a
        :class:`CancelScope` a cancel stops it while it streams, and a
        stream released before its end kills its statement first (closing
        a stream whose query is still computing would wait for it)."""
        before_run(self, sql)
        scope = current_scope()
        if scope is not None:
            scope.check()
        conn = self._take()
        tag = self._tag_prefix + str(next(self._tags))
        entered = False
        try:
            if scope is not None:
                scope.enter(tag, self._kill)
                entered = True
            conn.session.query(f"SET log_comment = '{tag}', {_PLAIN_ARROW} = 'none'", "Null")
            res = conn.session.send_query(sql, "Arrow")
            first = _fetch(res)
        except Exception as e:  # chDB raises bare RuntimeError/ChdbError
            _flush(conn.session)
            if entered:
                assert scope is not None
                scope.leave(tag)
            self._give_back_streamed(conn)
            if isinstance(e, FsqlError):
                raise
            raise self._stream_error(scope, e, sql) from None
        batches = _Batches(self, conn, res, first, batch_rows, tag, scope if entered else None, sql)
        if first is None:  # chDB's public API ends an empty result without its schema
            del batches
            return pa.RecordBatchReader.from_batches(self.query(sql).schema, iter(()))
        return pa.RecordBatchReader.from_batches(batches.schema, batches)

    def _stream_error(self, scope: CancelScope | None, e: Exception, sql: str) -> FsqlError:
        if scope is not None and scope.canceled:
            return QueryCanceled(CANCELED)
        message = _clean(str(e))
        if message.startswith(_STREAM_PREFIX):
            message = message[len(_STREAM_PREFIX) :]
        return engine_error(self, message, sql)

    def execute(self, sql: str, inputs: Sequence[pa.Table] = ()) -> None:
        before_run(self, sql)
        if inputs:
            with self._input_lock:
                self._run(sql, "Null", inputs)
        else:
            self._run(sql, "Null")

    def insert(self, target: exp.Table, data: pa.Table) -> None:
        """Append ``data`` (columns in table order) to ``target``."""
        sql = exp.insert(exp.select(exp.Star()).from_(input_ref(0)), target).sql(DIALECT)
        self.execute(sql, [data])

    def close(self) -> None:
        """Close the idle sessions now, a running one when its statement returns."""
        global _OPEN_PATH
        with self._pool_lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
        with self._control_lock:
            control, self._control = self._control, None
        with _OPEN_LOCK:
            try:
                for conn in idle:
                    conn.session.close()
                if control is not None:
                    control.close()
            finally:
                _OPEN_PATH = None


class _Batches:
    """The batches of one streaming statement, holding its pooled session
    until they are read to the end, fail, or are dropped (``__del__``,
    which also covers a stream never read from)."""

    def __init__(
        self,
        engine: ChdbEngine,
        conn: _Conn,
        res: Any,
        first: pa.Table | None,
        batch_rows: int,
        tag: str,
        scope: CancelScope | None,
        sql: str,
    ) -> None:
        self._engine = engine
        self._conn: _Conn | None = conn
        self._res = res
        self._batch_rows = batch_rows
        self._tag = tag
        self._scope = scope
        self._sql = sql
        self._ended = first is None
        self.schema = _naive_schema(first.schema) if first is not None else pa.schema([])
        self._same = first is not None and self.schema.equals(first.schema)
        self._pending: list[pa.RecordBatch] = first.to_batches() if first is not None else []

    def __iter__(self) -> _Batches:
        return self

    def __next__(self) -> pa.RecordBatch:
        if self._conn is None:
            raise StopIteration
        parts: list[pa.RecordBatch] = []
        rows = 0
        try:
            while rows < self._batch_rows:
                if not self._pending:
                    table = None if self._ended else _fetch(self._res)
                    if table is None:
                        self._ended = True
                        break
                    self._pending = table.to_batches()
                    continue
                b = self._pending.pop(0)
                if b.num_rows:
                    parts.append(b)
                    rows += b.num_rows
        except Exception as e:  # chDB raises bare RuntimeError/ChdbError
            self._release(ended=True, failed=True)
            raise self._engine._stream_error(self._scope, e, self._sql) from None
        if not parts:
            self._release(ended=True)
            raise StopIteration
        b = parts[0] if len(parts) == 1 else pa.concat_batches(parts)
        return b if self._same else pa.RecordBatch.from_arrays(b.columns, schema=self.schema)

    def _release(self, *, ended: bool, failed: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        engine = self._engine
        if not ended:  # dropped early: stop the statement (closing would wait for it)
            try:
                engine._kill(self._tag)
            except Exception:
                pass
        try:
            self._res.close()
        except Exception:
            pass
        if failed or not ended:
            _flush(conn.session)
        if self._scope is not None:
            self._scope.leave(self._tag)
        engine._give_back_streamed(conn)

    def __del__(self) -> None:
        # Dropped before its end: released in a thread of its own. The last
        # reference may go anywhere, garbage collection included, which can
        # run inside another chDB call on this thread (chDB then loses that
        # call's thread state), or on an event loop.
        if self._conn is not None:
            try:
                _RELEASES.submit(self._release, ended=self._ended)
            except RuntimeError:  # interpreter shutdown
                self._release(ended=self._ended)


def _fetch(res: Any) -> pa.Table | None:
    """The next block of a streaming result (chDB ``send_query(sql,
    "Arrow")``), None at its end; the first block of an empty result is an
    empty table with the result's schema. Read through chDB's connection
    where it allows: chDB's public ``fetch`` ends an empty result without
    a block, so its schema would be lost. The block's bytes are copied out
    of chDB's buffer, which the next block reuses."""
    conn, handle = getattr(res, "_conn", None), getattr(res, "_result", None)
    if conn is None or handle is None or not hasattr(conn, "streaming_fetch_result"):
        chunk = res.fetch()
    else:
        chunk = conn.streaming_fetch_result(handle)
        if chunk is not None and chunk.size() == 0:
            chunk = None
    if chunk is None:
        return None
    view = chunk.get_memview().view()
    copy = pa.allocate_buffer(len(view))  # Arrow's pool keeps its pages for the next block
    np.frombuffer(copy, dtype=np.uint8)[:] = np.frombuffer(view, dtype=np.uint8)
    return pa.ipc.open_file(copy).read_all()


# A stream's blocks reach Arrow in this process: chDB's default LZ4 on the
# way only costs time (half the engine's CPU for 1M rows), so streams turn
# it off. Only streams: chDB's materialized results (``ArrowTable``) point
# into memory chDB frees, which only decompression copies out of.
_PLAIN_ARROW = "output_format_arrow_compression_method"


_RELEASES = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fsql-chdb-release")


NAIVE_TZ = "Etc/UTC"


def _naive_schema(schema: pa.Schema) -> pa.Schema:
    fields = []
    for f in schema:
        if pa.types.is_timestamp(f.type) and f.type.tz == NAIVE_TZ:
            f = f.with_type(pa.timestamp(f.type.unit))
        fields.append(f)
    return pa.schema(fields, metadata=schema.metadata)


def naive_timestamps(table: pa.Table) -> pa.Table:
    """ClickHouse ``DateTime64(6)`` (no zone) arrives tagged with the session
    zone; give it back as a naive Arrow timestamp. ``DateTime64(6, 'UTC')``
    (timestamptz) keeps its zone."""
    schema = _naive_schema(table.schema)
    return table if schema.equals(table.schema) else table.cast(schema)


_STREAM_PREFIX = "Streaming query failed: "


def _clean(message: str) -> str:
    """ClickHouse messages end with a stack-trace hint; keep the sentence."""
    text = message.strip()
    for marker in (". (", " (version "):
        cut = text.find(marker)
        if cut > 0 and text.rstrip().endswith(")"):
            text = text[: cut + 1]
            break
    return text


def _flush(session: Any) -> None:
    """A query that fails while its result is being written leaves bytes of
    that result in the session's output buffer, and chDB hands them to the
    next query ("Message metadata too long" for Arrow): one throwaway query
    takes them, so the session's next caller gets its own result."""
    try:
        session.query("SELECT 1", "Null")
    except Exception:
        pass
