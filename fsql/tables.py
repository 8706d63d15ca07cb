"""Arrow is the one result type; this turns what users hand us into it."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from fsql.errors import InvalidParameter


def as_arrow(data: Any) -> pa.Table:
    """A pyarrow Table from a Table, RecordBatch(Reader), pandas or polars
    DataFrame, or a dict of columns."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    if isinstance(data, dict):
        return pa.table(data)
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        return data.to_arrow()
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    raise InvalidParameter(
        f"cannot read a {type(data).__name__} as a table",
        hint="Pass a pyarrow Table, a pandas or polars DataFrame, or a dict of columns.",
    )
