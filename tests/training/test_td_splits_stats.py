"""Splits (hash-based random with a seed, time-based) and statistics
computed in the engine, checked against numpy."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest

import fsql
from fsql.errors import InvalidParameter, UndefinedColumn
from fsql.training import splits, stats


def table(n: int = 4000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "cid": np.arange(n, dtype=np.int64) % 500,
            "ts": pa.array(
                (
                    np.datetime64("2024-01-01") + rng.integers(0, 100, n).astype("timedelta64[D]")
                ).astype("datetime64[us]")
            ),
            "x": rng.normal(10, 3, n),
            "label": rng.integers(0, 2, n),
        }
    )


def names_of(store: fsql.Store, t: pa.Table, spec: splits.Split) -> list[str]:
    index = splits.assign(store.engine, t, spec)
    return [splits.split_names(spec)[i] for i in index]


def test_random_split_is_stable_and_independent_of_row_order(store: fsql.Store) -> None:
    t = table()
    spec = splits.make_split({"splits": "train:0.8,test:0.2", "seed": 7})
    first = names_of(store, t, spec)
    assert first == names_of(store, t, spec)
    perm = np.random.default_rng(1).permutation(t.num_rows)
    shuffled = names_of(store, t.take(pa.array(perm)), spec)
    assert [first[i] for i in perm] == shuffled
    share = first.count("train") / len(first)
    assert 0.77 < share < 0.83


def test_another_seed_gives_another_split(store: fsql.Store) -> None:
    t = table()
    a = names_of(store, t, splits.make_split({"splits": "train:0.5,test:0.5", "seed": 1}))
    b = names_of(store, t, splits.make_split({"splits": "train:0.5,test:0.5", "seed": 2}))
    assert a != b
    assert 0.4 < sum(x != y for x, y in zip(a, b, strict=True)) / len(a) < 0.6


def test_three_way_split_and_split_key_keeps_entities_together(store: fsql.Store) -> None:
    t = table()
    spec = splits.make_split(
        {"splits": "train:0.6,validation:0.2,test:0.2", "seed": 3, "split_key": "cid"}
    )
    got = names_of(store, t, spec)
    by_entity: dict[int, set[str]] = {}
    for cid, name in zip(t.column("cid").to_pylist(), got, strict=True):
        by_entity.setdefault(cid, set()).add(name)
    assert all(len(v) == 1 for v in by_entity.values())
    assert {n for v in by_entity.values() for n in v} == {"train", "validation", "test"}


def test_time_split_puts_earlier_rows_in_train(store: fsql.Store) -> None:
    t = table()
    spec = splits.make_split(
        {"split_by": "ts", "train_until": "2024-03-01", "validation_until": "2024-03-20"}
    )
    got = names_of(store, t, spec)
    for ts, name in zip(t.column("ts").to_pylist(), got, strict=True):
        if ts < dt.datetime(2024, 3, 1):
            assert name == "train"
        elif ts < dt.datetime(2024, 3, 20):
            assert name == "validation"
        else:
            assert name == "test"
    named = splits.make_split({"split_by": "ts", "train_until": "2024-03-01", "splits": "fit,eval"})
    assert splits.split_names(named) == ["fit", "eval"]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"splits": "train:0.8,test:0.3"}, "sum to 1.1"),
        ({"splits": "train:0.8"}, "sum to 0.8"),
        ({"splits": "train:0.5,train:0.5"}, "distinct"),
        ({"splits": "tr-ain:0.5,test:0.5"}, "not valid"),
        ({"splits": "train:x,test:0.5"}, "not a number"),
        ({"splits": "train:0,test:1"}, "(0, 1]"),
        ({"seed": 3}, "need splits"),
        ({"splits": "a:0.5,b:0.5", "seed": -1}, "non-negative"),
        ({"train_until": "2024-01-01"}, "needs split_by"),
        ({"split_by": "ts"}, "needs train_until"),
        ({"split_by": "ts", "train_until": "2024-01-01", "seed": 1}, "random splits"),
        ({"split_by": "ts", "train_until": "2024-01-01", "splits": "a:0.5,b:0.5"}, "without"),
        (
            {"split_by": "ts", "train_until": "2024-02-01", "validation_until": "2024-01-01"},
            "later",
        ),
        ({"split_by": "ts", "train_until": "soon"}, "not a timestamp"),
    ],
)
def test_bad_split_options(options: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        splits.make_split(options)
    assert words in e.value.message
    assert len(e.value.sqlstate) == 5


def test_split_columns_must_exist_and_times_must_not_be_null(store: fsql.Store) -> None:
    t = table(50)
    with pytest.raises(UndefinedColumn):
        splits.assign(
            store.engine, t, splits.make_split({"split_by": "when", "train_until": "2024-01-01"})
        )
    with pytest.raises(UndefinedColumn):
        splits.assign(
            store.engine, t, splits.make_split({"splits": "a:0.5,b:0.5", "split_key": "nope"})
        )
    nulls = t.set_column(1, "ts", pa.array([None] * 50, pa.timestamp("us")))
    with pytest.raises(InvalidParameter) as e:
        splits.assign(
            store.engine, nulls, splits.make_split({"split_by": "ts", "train_until": "2024-01-01"})
        )
    assert e.value.sqlstate == "22004"


def test_statistics_match_numpy(store: fsql.Store) -> None:
    t = table(3000)
    x = t.column("x").to_numpy().copy()
    x[::10] = np.nan  # NaN is left out of min/max/mean/stddev
    with_nulls = pa.array(np.where(np.arange(3000) % 7 == 0, None, x).tolist(), pa.float64())
    t = t.set_column(2, "x", with_nulls)
    index = splits.assign(
        store.engine, t, splits.make_split({"splits": "train:0.7,test:0.3", "seed": 1})
    )
    parts = splits.partition(t, index, ["train", "test"])
    result = stats.compute(store.engine, parts, labels=["label"])
    assert set(result) == {"train", "test", "*"}
    for name, part in [*parts.items(), ("*", t)]:
        s = result[name]["x"]
        col = part.column("x")
        values = np.array([v for v in col.to_pylist() if v is not None and not math.isnan(v)])
        assert s["count"] == part.num_rows
        assert s["nulls"] == col.null_count
        assert s["min"] == pytest.approx(values.min())
        assert s["max"] == pytest.approx(values.max())
        assert s["mean"] == pytest.approx(values.mean())
        assert s["stddev"] == pytest.approx(values.std(ddof=1))
        hist = s["histogram"]
        assert len(hist["edges"]) == len(hist["counts"]) + 1
        assert sum(hist["counts"]) == len(values)
        labels = part.column("label").to_numpy()
        balance = {b["value"]: b["count"] for b in result[name]["label"]["label_balance"]}
        assert balance == {0: int((labels == 0).sum()), 1: int((labels == 1).sum())}
        cid_distinct = result[name]["cid"]["distinct"]
        true_distinct = len(set(part.column("cid").to_pylist()))
        assert abs(cid_distinct - true_distinct) <= 0.05 * true_distinct
        assert result[name]["ts"]["min"] == str(min(part.column("ts").to_pylist()))
    # the same edges for every split: histograms add up
    counts = [result[s]["x"]["histogram"]["counts"] for s in ("train", "test")]
    assert [a + b for a, b in zip(*counts, strict=True)] == result["*"]["x"]["histogram"]["counts"]
