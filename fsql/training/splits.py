"""Train/test splits of a training dataset.

Random splits are hash-based: each row's split follows from
``cityHash64(seed, row key)`` computed in the engine, where the row key is the
columns named by ``split_key`` (default: every column). The same seed and the
same rows give the same split whatever their order, and identical rows always
land together. Time splits put rows with ``split_by < train_until`` into the
first split, ``< validation_until`` (optional) into the second, the rest into
the last.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from fsql.connectors.engine import Engine, input_ref
from fsql.errors import InvalidParameter, UndefinedColumn
from fsql.timeutil import to_micros

ROW_COLUMN = "__fsql_row"
DEFAULT_SPLIT = "all"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class RandomSplit:
    fractions: tuple[tuple[str, float], ...]
    seed: int
    key: tuple[str, ...] | None = None  # None: every column

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.fractions]


@dataclass(frozen=True)
class TimeSplit:
    column: str
    bounds: tuple[tuple[str, int], ...]  # (split, exclusive upper bound in us)
    last: str

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.bounds] + [self.last]


Split = RandomSplit | TimeSplit | None


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidParameter(
            f"split name {name!r} is not valid",
            hint="Use letters, digits and underscores, e.g. 'train:0.8,test:0.2'.",
        )
    return name


def parse_fractions(text: str) -> tuple[tuple[str, float], ...]:
    """``'train:0.8,test:0.2'`` -> (('train', 0.8), ('test', 0.2))."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise InvalidParameter("splits is empty", hint="Use e.g. 'train:0.8,test:0.2'.")
    out: list[tuple[str, float]] = []
    for part in parts:
        name, sep, value = part.partition(":")
        name = _check_name(name.strip())
        if not sep:
            raise InvalidParameter(
                f"split {name!r} has no fraction", hint="Use name:fraction, e.g. 'train:0.8'."
            )
        try:
            fraction = float(value)
        except ValueError:
            raise InvalidParameter(f"split fraction {value.strip()!r} is not a number") from None
        if not 0 < fraction <= 1 or math.isnan(fraction):
            raise InvalidParameter(
                f"split {name!r} has fraction {fraction}; fractions are in (0, 1]"
            )
        out.append((name, fraction))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise InvalidParameter("split names must be distinct: " + ", ".join(names))
    total = sum(f for _, f in out)
    if abs(total - 1.0) > 1e-9:
        raise InvalidParameter(
            f"split fractions sum to {total:g}, not 1",
            hint="Make them add up to 1, e.g. 'train:0.8,test:0.2'.",
        )
    return tuple(out)


def parse_names(text: str) -> list[str]:
    return [_check_name(p.strip()) for p in str(text).split(",") if p.strip()]


def make_split(options: dict[str, object]) -> Split:
    """The split described by the (already validated-by-name) options."""
    splits = options.get("splits")
    split_by = options.get("split_by")
    if split_by is not None:
        if "train_until" not in options:
            raise InvalidParameter(
                "split_by needs train_until",
                hint="e.g. WITH (split_by = 'event_ts', train_until = '2024-06-01')",
            )
        if "seed" in options:
            raise InvalidParameter("seed applies to random splits, not to split_by")
        bounds: list[tuple[str, object]] = [("train", options["train_until"])]
        if "validation_until" in options:
            bounds.append(("validation", options["validation_until"]))
        names = parse_names(str(splits)) if splits is not None and ":" not in str(splits) else None
        if splits is not None and names is None:
            raise InvalidParameter(
                "a time split takes split names without fractions",
                hint="e.g. splits = 'train,test' with split_by and train_until",
            )
        wanted = len(bounds) + 1
        if names is None:
            names = [n for n, _ in bounds] + ["test"]
        if len(names) != wanted:
            raise InvalidParameter(
                f"a time split with {len(bounds)} boundar{'y' if len(bounds) == 1 else 'ies'} "
                f"has {wanted} splits, not {len(names)}"
            )
        if len(set(names)) != len(names):
            raise InvalidParameter("split names must be distinct: " + ", ".join(names))
        us = [to_micros(str(v)) if not isinstance(v, int) else v for _, v in bounds]
        if any(b <= a for a, b in itertools.pairwise(us)):
            raise InvalidParameter("validation_until must be later than train_until")
        return TimeSplit(
            column=str(split_by),
            bounds=tuple(zip(names[:-1], us, strict=True)),
            last=names[-1],
        )
    for key in ("train_until", "validation_until"):
        if key in options:
            raise InvalidParameter(f"{key} needs split_by = 'time column'")
    if splits is None:
        if "seed" in options or "split_key" in options:
            raise InvalidParameter("seed and split_key need splits = 'train:0.8,test:0.2'")
        return None
    seed = options.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidParameter(f"seed must be a non-negative integer, got {seed!r}")
    split_key = options.get("split_key")
    key_cols = (
        tuple(c.strip() for c in str(split_key).split(",") if c.strip()) if split_key else None
    )
    return RandomSplit(parse_fractions(str(splits)), seed, key_cols)


def split_names(split: Split) -> list[str]:
    return [DEFAULT_SPLIT] if split is None else split.names


def _check_columns(table: pa.Table, columns: list[str], what: str) -> None:
    for c in columns:
        if c not in table.column_names:
            raise UndefinedColumn(
                f'{what} column "{c}" is not a column of the training dataset',
                hint="Columns: " + ", ".join(table.column_names),
            )


def assign(engine: Engine, table: pa.Table, split: Split) -> np.ndarray:
    """The split index (into ``split_names(split)``) of every row."""
    n = table.num_rows
    if split is None or n == 0:
        return np.zeros(n, dtype=np.int64)
    if isinstance(split, TimeSplit):
        return _assign_time(table, split)
    return _assign_random(engine, table, split)


def _assign_random(engine: Engine, table: pa.Table, split: RandomSplit) -> np.ndarray:
    key = list(split.key) if split.key else list(table.column_names)
    _check_columns(table, key, "split_key")
    n = table.num_rows
    data = table.select(key)
    data = data.rename_columns([f"c{i}" for i in range(len(key))])
    data = data.append_column(ROW_COLUMN, pa.array(np.arange(n, dtype=np.uint64)))
    row_hash = exp.func(
        "cityHash64",
        exp.Literal.number(split.seed),
        exp.Tuple(expressions=[exp.column(f"c{i}", quoted=True) for i in range(len(key))]),
    )
    q = exp.select(exp.column(ROW_COLUMN, quoted=True), exp.alias_(row_hash, "h", quoted=True))
    q = q.from_(input_ref(0))
    result = engine.query(q.sql("clickhouse"), [data])
    rows = result.column(0).to_numpy()
    hashes = np.empty(n, dtype=np.uint64)
    hashes[rows.astype(np.int64)] = result.column(1).to_numpy()
    # cumulative thresholds on the 64-bit hash range; the last split takes the rest
    cumulative = np.cumsum([f for _, f in split.fractions])[:-1]
    thresholds = np.array([min(int(c * 2.0**64), 2**64 - 1) for c in cumulative], dtype=np.uint64)
    return np.searchsorted(thresholds, hashes, side="right").astype(np.int64)


def _assign_time(table: pa.Table, split: TimeSplit) -> np.ndarray:
    _check_columns(table, [split.column], "split_by")
    column = table.column(split.column)
    t = column.type
    if pa.types.is_date(t):
        micros = pc.multiply(
            column.cast(pa.date32()).cast(pa.int32()).cast(pa.int64()), 86_400_000_000
        )
    elif pa.types.is_timestamp(t):
        micros = column.cast(pa.timestamp("us", tz=t.tz)).cast(pa.int64())
    else:
        raise InvalidParameter(
            f'split_by column "{split.column}" has type {t}; it must be a timestamp or date',
            sqlstate="42804",
        )
    if column.null_count:
        raise InvalidParameter(
            f'split_by column "{split.column}" has {column.null_count} NULL value(s); '
            "a time split needs a time for every row",
            sqlstate="22004",
            hint="Filter them out in the query, or use a random split.",
        )
    values = micros.to_numpy()
    bounds = np.array([b for _, b in split.bounds], dtype=np.int64)
    return np.searchsorted(bounds, values, side="right").astype(np.int64)


def partition(table: pa.Table, index: np.ndarray, names: list[str]) -> dict[str, pa.Table]:
    """Rows per split, each in the table's order."""
    if len(names) == 1:
        return {names[0]: table}
    out = {}
    for i, name in enumerate(names):
        out[name] = table.take(pa.array(np.flatnonzero(index == i)))
    return out
