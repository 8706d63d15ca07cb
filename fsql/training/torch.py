"""A PyTorch ``IterableDataset`` over one split of a training dataset.

Needs the ``torch`` extra (``pip install 'fsql[torch]'``). Rows come in the
dataset's stored order; with several DataLoader workers each worker reads
every ``num_workers``-th chunk of rows, so no row is read twice.

Each item is a dict of column name to value: numbers and booleans as
tensors (timestamps as int64 microseconds since the epoch, dates as int32
days), text as ``str``. With ``batch_size`` each item is a batch: tensors of
that many rows (the last may be shorter) and lists of strings. A NULL
number is NaN in a float tensor; in an integer column it is an error,
because a tensor cannot hold it (fill it in the query).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from fsql.catalog.training import TrainingDatasetRecord
from fsql.errors import FeatureNotSupported, InvalidParameter

try:
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError:  # pragma: no cover - the extra is optional
    torch = None  # type: ignore[assignment]
    IterableDataset = object  # type: ignore[assignment,misc]
    get_worker_info = None  # type: ignore[assignment]

CHUNK_ROWS = 4096


def _column_values(arr: pa.Array, name: str) -> Any:
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return arr.to_pylist()
    if pa.types.is_timestamp(t) or pa.types.is_duration(t):
        arr = arr.cast(pa.int64())
    elif pa.types.is_date32(t):
        arr = arr.cast(pa.int32())
    elif pa.types.is_decimal(t):
        arr = arr.cast(pa.float64())
    if pa.types.is_floating(arr.type):
        return torch.from_numpy(np.array(arr.to_numpy(zero_copy_only=False)))
    if arr.null_count:
        raise InvalidParameter(
            f'column "{name}" has NULL values, which an integer tensor cannot hold',
            hint="Fill them in the query (coalesce) or cast the column to double precision.",
        )
    if pa.types.is_integer(arr.type) or pa.types.is_boolean(arr.type):
        return torch.from_numpy(np.array(arr.to_numpy(zero_copy_only=False)))
    return arr.to_pylist()


class TrainingIterable(IterableDataset):  # type: ignore[misc]
    def __init__(
        self,
        record: TrainingDatasetRecord,
        split: str | None = None,
        *,
        batch_size: int | None = None,
        columns: list[str] | None = None,
    ) -> None:
        if torch is None:
            raise FeatureNotSupported(
                "the PyTorch reader needs torch", hint="pip install 'fsql[torch]'"
            )
        if split is None:
            splits = list(record.split_counts)
            if len(splits) != 1:
                raise InvalidParameter(
                    f'training dataset "{record.name}" has splits {", ".join(splits)}; name one'
                )
            split = splits[0]
        if split not in record.split_counts:
            raise InvalidParameter(
                f'training dataset "{record.name}" v{record.version} has no split {split!r}',
                hint="Splits: " + ", ".join(record.split_counts),
            )
        if batch_size is not None and batch_size < 1:
            raise InvalidParameter("batch_size must be 1 or more")
        self.record = record
        self.split = split
        self.batch_size = batch_size
        self.columns = columns

    def __len__(self) -> int:
        n = int(self.record.split_counts[self.split])
        if self.batch_size is None:
            return n
        return (n + self.batch_size - 1) // self.batch_size

    def _table(self) -> pa.Table:
        from fsql.training.dataset import read_split

        table = read_split(self.record, self.split)
        return table.select(self.columns) if self.columns else table

    def __iter__(self) -> Iterator[dict[str, Any]]:
        table = self._table()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        chunk = self.batch_size or CHUNK_ROWS
        for i, start in enumerate(range(0, table.num_rows, chunk)):
            if i % workers != worker:
                continue
            part = table.slice(start, chunk)
            values = {
                name: _column_values(part.column(name).combine_chunks(), name)
                for name in part.column_names
            }
            if self.batch_size is not None:
                yield values
                continue
            for r in range(part.num_rows):
                yield {name: v[r] for name, v in values.items()}
