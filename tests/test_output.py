"""Result rendering: aligned text, CSV, JSON."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa

from fsql.output import cell, format_table, to_csv, to_json


def test_cells():
    assert cell(None) == "NULL"
    assert cell(True) == "true"
    assert cell(1.5) == "1.5"
    assert cell(2.0) == "2"
    assert cell(0.0) == "0"
    assert cell(1e-7) == "1e-07"
    assert cell(float("nan")) == "nan"
    assert cell(dt.datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02 03:04:05"
    assert cell(b"\x01\xff") == "\\x01ff"
    assert cell("x" * 100) == "x" * 57 + "..."


def test_format_table_aligns_and_counts():
    t = pa.table({"name": ["a", "bbb", None], "n": [1, 22, None]})
    lines = format_table(t).splitlines()
    assert lines == [
        "name |  n",
        "-----+-----",
        "a    |    1",
        "bbb  |   22",
        "NULL | NULL",
        "(3 rows)",
    ]
    assert format_table(t, max_rows=1).splitlines()[-1] == "(3 rows, first 1 shown)"
    assert format_table(t.slice(0, 1)).splitlines()[-1] == "(1 row)"


def test_json_and_csv():
    t = pa.table(
        {
            "at": pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us")),
            "price": pa.array([Decimal("1.10")], pa.decimal128(5, 2)),
            "tags": [["a", "b"]],
        }
    )
    assert json.loads(to_json(t)) == [
        {"at": "2024-01-01T00:00:00", "price": "1.10", "tags": ["a", "b"]}
    ]
    assert to_csv(t.select(["price"])).splitlines() == ['"price"', "1.10"]
