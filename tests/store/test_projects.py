"""A store seen from another project: names resolve in that project, the
engine and catalog are shared."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

import fsql


def _rows(v: float) -> pa.Table:
    return pa.table({"k": [1], "ts": [dt.datetime(2024, 1, 1)], "amount": [v]})


def test_each_project_sees_its_own_groups(store):
    store.catalog.ensure_project("p2")
    store.create_feature_group("cust", _rows(1.0), primary_key="k", event_time="ts")
    p2 = store.for_project("p2")
    assert p2.for_project("p2") is p2
    assert store.for_project(store.project) is store
    with pytest.raises(fsql.FsqlError) as e:
        p2.sql("SELECT count(*) FROM cust")
    assert e.value.sqlstate == "42P01"
    p2.create_feature_group("cust", _rows(2.0), primary_key="k", event_time="ts")
    assert p2.sql("SELECT amount FROM cust").column("amount").to_pylist() == [2.0]
    assert store.sql("SELECT amount FROM cust").column("amount").to_pylist() == [1.0]
    got = p2.sql("SELECT FEATURES amount WHERE k = 1")
    assert got.column("amount").to_pylist() == [2.0]
    # another project's tables are not reachable by their engine names
    with pytest.raises(fsql.FsqlError) as e:
        store.sql("SELECT * FROM fsql_p2.cust_v1")
    assert e.value.sqlstate == "42501"


def test_an_unknown_project_is_3d000(store):
    with pytest.raises(fsql.FsqlError) as e:
        store.for_project("nope")
    assert e.value.sqlstate == "3D000"
