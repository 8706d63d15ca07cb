"""The engine interface: ClickHouse SQL in, Arrow out.

Both engines run the same ClickHouse SQL; only the transport differs. Arrow
tables handed to a query are addressed as ``Python(fsql_input_N)`` in the SQL
text (see :func:`input_ref`), which the embedded engine reads zero-copy and
the server engine uploads into a temporary table first.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import pyarrow as pa
from sqlglot import exp

from fsql.errors import EngineError, FsqlError

MAX_INPUTS = 4


def input_ref(index: int) -> exp.Expression:
    """The table expression that reads the ``index``-th Arrow input of a query."""
    if not 0 <= index < MAX_INPUTS:
        raise ValueError(f"at most {MAX_INPUTS} Arrow inputs per query")
    return exp.Anonymous(this="Python", expressions=[exp.column(f"fsql_input_{index}")])


class Engine(Protocol):
    """A ClickHouse-SQL engine."""

    name: str

    def query(self, sql: str, inputs: Sequence[pa.Table] = ()) -> pa.Table:
        """Run a query and return its result as one Arrow table."""
        ...

    def stream(self, sql: str, batch_rows: int = 65536) -> pa.RecordBatchReader:
        """Run a query and stream its result in record batches. The engine
        resources it holds are released when the reader is exhausted, fails,
        or is dropped (its last reference); one dropped early stops the
        query. Inside a :class:`CancelScope` a cancel stops it while it
        streams."""
        ...

    def execute(self, sql: str, inputs: Sequence[pa.Table] = ()) -> None:
        """Run a statement whose result is not needed (DDL, INSERT)."""
        ...

    def insert(self, target: exp.Table, data: pa.Table) -> None:
        """Append ``data`` (columns in table order) to ``target``."""
        ...

    def close(self) -> None: ...


# Cancel -----------------------------------------------------------------------
#
# A caller that may need to stop engine work from another thread (the server,
# on a CancelRequest) runs it inside ``cancellable(scope)``. An engine that can
# stop a running statement registers each statement it runs there with
# ``scope.enter(tag, kill)`` and ``scope.leave(tag)``; ``scope.cancel()`` then
# calls ``kill(tag)`` for every registered statement until each has returned,
# and every later statement in the scope is refused with :class:`QueryCanceled`.


class QueryCanceled(FsqlError):
    sqlstate = "57014"


CANCELED = "canceling statement due to user request"


class CancelScope:
    """The engine statements of one unit of work, which another thread may stop."""

    def __init__(self) -> None:
        self.canceled = False
        self._lock = threading.Lock()
        self._running: dict[str, Callable[[str], None]] = {}

    def enter(self, tag: str, kill: Callable[[str], None]) -> None:
        """Register a statement about to run; :class:`QueryCanceled` when
        the scope is canceled already."""
        with self._lock:
            if self.canceled:
                raise QueryCanceled(CANCELED)
            self._running[tag] = kill

    def leave(self, tag: str) -> None:
        # under the lock: once this returns, no kill of ``tag`` is under way,
        # so the engine may reuse whatever identified the statement
        with self._lock:
            self._running.pop(tag, None)

    def check(self) -> None:
        if self.canceled:
            raise QueryCanceled(CANCELED)

    def cancel(self, timeout: float = 5.0, interval: float = 0.05) -> bool:
        """Refuse further statements and kill the running ones; blocks until
        none runs (True) or ``timeout`` seconds have passed (False). Kills are
        repeated, so a statement registered just before it reached the engine
        is killed once it shows up there."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self.canceled = True
        while True:
            with self._lock:
                if not self._running:
                    return True
                for tag, kill in list(self._running.items()):
                    try:
                        kill(tag)
                    except Exception:  # a failed kill is retried until the deadline
                        pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)


_SCOPE: contextvars.ContextVar[CancelScope | None] = contextvars.ContextVar(
    "fsql_cancel_scope", default=None
)


@contextmanager
def cancellable(scope: CancelScope | None) -> Iterator[None]:
    """Run the engine statements of the block in ``scope`` (None: not cancellable)."""
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)


def current_scope() -> CancelScope | None:
    return _SCOPE.get()


# Hooks another layer may set on an engine object (both engines run them;
# an engine without them simply has none):
#
# - ``before_run(sql)`` runs before each statement is sent: an on-demand
#   group in fetch mode loads its temporary table there, and only when a
#   statement that reads it runs (so EXPLAIN, which runs nothing, fetches
#   nothing);
# - ``translate_error(sql, error)`` may replace an engine error with a
#   clearer one (an error a source raised while the engine read it, named by
#   connector and source object).
BeforeRun = Callable[[str], None]
TranslateError = Callable[[str, FsqlError], FsqlError]


def before_run(engine: Any, sql: str) -> None:
    hook: BeforeRun | None = getattr(engine, "before_run", None)
    if hook is not None:
        hook(sql)


def engine_error(engine: Any, message: str, sql: str) -> FsqlError:
    """The error for a statement the engine rejected: an :class:`EngineError`
    with the SQL as detail, unless the engine's ``translate_error`` hook
    gives a better one."""
    error: FsqlError = EngineError(message, detail=sql[:2000])
    hook: TranslateError | None = getattr(engine, "translate_error", None)
    if hook is None:
        return error
    try:
        return hook(sql, error)
    except Exception:  # a failing translation must not hide the error
        return error
