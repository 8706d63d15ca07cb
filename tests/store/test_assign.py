"""SQL INSERT converts values to feature types by PostgreSQL's assignment
rules (fsql/assign.py): what does not fit is an error naming the column,
never a wrapped, truncated or NULLed value, and nothing is written."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from fsql.errors import FsqlError

UTC = dt.UTC


@pytest.fixture
def profile(store):
    store.sql(
        "CREATE FEATURE GROUP profile (customer_id BIGINT, updated_at TIMESTAMP, age INT, "
        "ok BOOLEAN, amount NUMERIC(10,2), seen TIMESTAMPTZ, city TEXT) "
        "PRIMARY KEY (customer_id) EVENT TIME updated_at"
    )
    return store


@pytest.mark.parametrize(
    ("values", "sqlstate", "words"),
    [
        ("(1, '2024-01-01', 99999999999, NULL, NULL, NULL, NULL)", "22003", "99999999999"),
        ("(1, '2024-01-01', 'abc', NULL, NULL, NULL, NULL)", "22P02", '"abc"'),
        ("(1, 'notatime', 1, NULL, NULL, NULL, NULL)", "22007", '"notatime"'),
        ("(1, '2024-13-45', 1, NULL, NULL, NULL, NULL)", "22007", '"2024-13-45"'),
        ("(1, '2024-01-01', 1, 'maybe', NULL, NULL, NULL)", "22P02", '"maybe"'),
        ("(1, '2024-01-01', 1, NULL, 123456789012, NULL, NULL)", "22003", "123456789012"),
        ("(1, '2024-01-01', 1, NULL, NULL, 'soon', NULL)", "22007", '"soon"'),
        ("(1, '2024-01-01', 1, NULL, NULL, NULL, NULL), "
         "('x', '2024-01-02', 1, NULL, NULL, NULL, 'a')", "22P02", '"x"'),
    ],
)  # fmt: skip
def test_values_that_do_not_fit_are_refused_and_nothing_is_written(
    profile, values, sqlstate, words
):
    with pytest.raises(FsqlError) as e:
        profile.sql(f"INSERT INTO profile VALUES {values}")
    assert e.value.sqlstate == sqlstate
    assert words in e.value.message and "column" in e.value.message
    assert profile.sql("SELECT count(*) AS n FROM profile").column("n").to_pylist() == [0]


def test_insert_select_of_a_value_that_does_not_fit_is_refused(profile):
    with pytest.raises(FsqlError) as e:
        profile.sql(
            "INSERT INTO profile SELECT 8, TIMESTAMP '2024-01-01', 'zz', NULL, NULL, NULL, 'a'"
        )
    assert e.value.sqlstate == "22P02" and '"age"' in e.value.message


def test_values_convert_as_postgresql_assigns_them(profile):
    profile.sql(
        "INSERT INTO profile VALUES "
        "(1, '2024-01-01', 3.7, 'yes', '12.345', '2024-01-01 10:00:00+02', 'a'), "
        "('2', '2024-01-02 08:30:00', ' 7 ', 'f', 2.5, '2024-01-01', 42)"
    )
    rows = profile.sql("SELECT * FROM profile ORDER BY customer_id").to_pylist()
    assert rows == [
        {
            "customer_id": 1,
            "updated_at": dt.datetime(2024, 1, 1),
            "age": 4,  # a float rounds to the nearest integer
            "ok": True,
            "amount": Decimal("12.35"),  # numeric rounds half away from zero
            "seen": dt.datetime(2024, 1, 1, 8, tzinfo=UTC),
            "city": "a",
        },
        {
            "customer_id": 2,
            "updated_at": dt.datetime(2024, 1, 2, 8, 30),
            "age": 7,
            "ok": False,
            "amount": Decimal("2.50"),
            "seen": dt.datetime(2024, 1, 1, tzinfo=UTC),  # no offset: the session zone, UTC
            "city": "42",
        },
    ]
