"""DESCRIBE t answers PostgreSQL types for every relation; near-miss SHOW
commands get a hint."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

import fsql


@pytest.fixture
def tx(store):
    store.create_feature_group(
        "tx",
        pa.table({"k": [1], "ts": [dt.datetime(2024, 1, 1)], "a": [1.0]}),
        primary_key="k",
        event_time="ts",
    )
    return store


def test_describe_a_feature_group_is_describe_feature_group(tx):
    plain = tx.sql("DESCRIBE tx")
    assert plain.equals(tx.sql("DESCRIBE FEATURE GROUP tx"))
    assert plain.column("type").to_pylist() == ["bigint", "timestamp", "double precision"]
    assert tx.sql("DESCRIBE TABLE tx_v1").equals(plain)


def test_describe_other_relations_by_their_columns(tx):
    tx.create_training_dataset("td", "SELECT k, a FROM tx")
    got = tx.sql("DESCRIBE td").to_pylist()
    assert got == [
        {"column": "k", "type": "bigint"},
        {"column": "a", "type": "double precision"},
        {"column": "split", "type": "text"},
    ]


@pytest.mark.parametrize(
    ("text", "state"),
    [("DESCRIBE nope", "42P01"), ("DESCRIBE system.tables", "42501")],
)
def test_describe_of_what_is_not_ours(tx, text, state):
    with pytest.raises(fsql.FsqlError) as e:
        tx.sql(text)
    assert e.value.sqlstate == state


def test_show_tables_points_to_feature_groups(tx):
    with pytest.raises(fsql.FsqlError) as e:
        tx.sql("SHOW TABLES")
    assert e.value.sqlstate == "42704"
    assert "SHOW FEATURE GROUPS" in (e.value.hint or "")
