"""The engine interface: ClickHouse SQL in, Arrow out.

Both engines run the same ClickHouse SQL; only the transport differs. Arrow
tables handed to a query are addressed as ``Python(fsql_input_N)`` in the SQL
text (see :func:`input_ref`), which the embedded engine reads zero-copy and
the server engine uploads into a temporary table first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pyarrow as pa
from sqlglot import exp

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
