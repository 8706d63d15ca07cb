"""The engine interface: ClickHouse SQL in, Arrow out.

Both engines run the same ClickHouse SQL; only the transport differs. Arrow
tables handed to a query are addressed as ``Python(fsql_input_N)`` in the SQL
text (see :func:`input_ref`), which the embedded engine reads zero-copy and
the server engine uploads into a temporary table first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
        """Run a query and stream its result in record batches."""
        ...

    def execute(self, sql: str, inputs: Sequence[pa.Table] = ()) -> None:
        """Run a statement whose result is not needed (DDL, INSERT)."""
        ...

    def insert(self, target: exp.Table, data: pa.Table) -> None:
        """Append ``data`` (columns in table order) to ``target``."""
        ...

    def close(self) -> None: ...


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
