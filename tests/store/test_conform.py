"""Bad input: every problem named at once, and nothing written."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from fsql.errors import DatatypeMismatch, FsqlError, NotNullViolation, UndefinedColumn

T0 = dt.datetime(2024, 1, 1)


@pytest.fixture
def fg(store):
    return store.create_feature_group(
        "tx",
        schema={
            "customer_id": "bigint",
            "event_ts": "timestamp",
            "amount": "double precision",
            "n": "integer",
            "price": "numeric(10,2)",
        },
        primary_key="customer_id",
        event_time="event_ts",
    )


def row(**overrides):
    base = {
        "customer_id": pa.array([1], pa.int64()),
        "event_ts": pa.array([T0], pa.timestamp("us")),
        "amount": pa.array([1.5]),
        "n": pa.array([3], pa.int32()),
        "price": pa.array([Decimal("9.99")], pa.decimal128(10, 2)),
    }
    for k, v in overrides.items():
        if v is None:
            del base[k]
        else:
            base[k] = v
    return pa.table(base)


def assert_nothing_written(fg):
    assert fg.read().num_rows == 0
    assert fg.commits() == []


def test_good_row_round_trips(fg):
    fg.insert(row())
    assert fg.read().to_pylist() == [
        {"customer_id": 1, "event_ts": T0, "amount": 1.5, "n": 3, "price": Decimal("9.99")}
    ]


def test_missing_columns_named_with_expected_types(fg):
    with pytest.raises(UndefinedColumn) as e:
        fg.insert(row(amount=None, n=None))
    msg = e.value.message
    assert "missing columns: amount (double precision), n (integer)" in msg
    assert e.value.sqlstate == "42703"
    assert "customer_id bigint" in (e.value.hint or "")
    assert_nothing_written(fg)


def test_extra_columns_named(fg):
    t = row().append_column("surprise", pa.array(["x"])).append_column("other", pa.array([1]))
    with pytest.raises(UndefinedColumn) as e:
        fg.insert(t)
    assert "unknown columns: surprise, other" in e.value.message
    assert_nothing_written(fg)


def test_mistyped_columns_named_with_expected_and_given_types(fg):
    with pytest.raises(DatatypeMismatch) as e:
        fg.insert(row(amount=pa.array(["lots"]), n=pa.array([True])))
    msg = e.value.message
    assert "amount (expected double precision, got string)" in msg
    assert "n (expected integer, got bool)" in msg
    assert e.value.sqlstate == "42804"
    assert_nothing_written(fg)


def test_all_problems_reported_together(fg):
    t = row(amount=None, n=pa.array(["3"])).append_column("extra", pa.array([0]))
    with pytest.raises(FsqlError) as e:
        fg.insert(t)
    msg = e.value.message
    assert "missing columns: amount" in msg
    assert "unknown columns: extra" in msg
    assert "n (expected integer, got string)" in msg
    assert_nothing_written(fg)


def test_values_that_do_not_fit_are_rejected(fg):
    with pytest.raises(DatatypeMismatch) as e:
        fg.insert(row(n=pa.array([2**40], pa.int64())))
    assert 'column "n"' in e.value.message and "integer" in e.value.message
    assert_nothing_written(fg)


def test_widening_casts_are_accepted(fg):
    fg.insert(
        row(
            amount=pa.array([2], pa.int16()),  # int -> double
            n=pa.array([7], pa.int8()),
            event_ts=pa.array([T0], pa.timestamp("s")),
        )
    )
    out = fg.read().to_pylist()[0]
    assert (out["amount"], out["n"], out["event_ts"]) == (2.0, 7, T0)


def test_column_order_does_not_matter(fg):
    t = row()
    fg.insert(t.select(list(reversed(t.column_names))))
    assert fg.read().column("customer_id").to_pylist() == [1]


def test_null_primary_key(fg):
    with pytest.raises(NotNullViolation) as e:
        fg.insert(
            pa.table(
                {
                    "customer_id": pa.array([1, None, None], pa.int64()),
                    "event_ts": pa.array([T0] * 3, pa.timestamp("us")),
                    "amount": [1.0, 2.0, 3.0],
                    "n": pa.array([1, 2, 3], pa.int32()),
                    "price": pa.array([None] * 3, pa.decimal128(10, 2)),
                }
            )
        )
    assert e.value.sqlstate == "23502"
    assert "customer_id (2 rows)" in e.value.message
    assert_nothing_written(fg)


def test_null_event_time(fg):
    with pytest.raises(NotNullViolation) as e:
        fg.insert(row(event_ts=pa.array([None], pa.timestamp("us"))))
    assert "event_ts (1 rows)" in e.value.message
    assert_nothing_written(fg)


def test_event_time_of_wrong_type_on_insert(fg):
    with pytest.raises(DatatypeMismatch) as e:
        fg.insert(row(event_ts=pa.array(["2024-01-01"])))
    assert "event_ts (expected timestamp, got string)" in e.value.message
    assert_nothing_written(fg)


def test_event_time_of_wrong_type_on_create(store):
    t = pa.table({"id": [1], "when": ["2024-01-01"], "v": [1.0]})
    with pytest.raises(DatatypeMismatch) as e:
        store.create_feature_group("g", t, primary_key="id", event_time="when")
    assert 'event time column "when" has type text' in e.value.message
    assert store.feature_groups() == []


def test_timezone_aware_times_keep_their_instant(store):
    fg = store.create_feature_group(
        "g",
        schema={"id": "bigint", "at": "timestamp"},
        primary_key="id",
        event_time="at",
    )
    aware = pa.array([dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC"))
    fg.insert(pa.table({"id": [1], "at": aware}))
    assert fg.read().column("at").to_pylist() == [dt.datetime(2024, 1, 1, 12)]
