"""Serving the feature vector of a training dataset: the same features, at
the feature-group versions it was built from."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest

import fsql
from fsql.errors import FsqlError


def test_vector_of_a_training_dataset(store: fsql.Store) -> None:
    t = datetime(2024, 1, 1)
    store.create_feature_group(
        "tx",
        pa.table({"customer_id": [1, 2], "ts": [t, t], "amount": [1.0, 2.0], "n": [10, 20]}),
        primary_key="customer_id",
        event_time="ts",
        online=True,
    )
    store.create_feature_group(
        "profile",
        pa.table({"customer_id": [1, 2], "ts": [t, t], "age": pa.array([30, 40], pa.int32())}),
        primary_key="customer_id",
        event_time="ts",
        online=True,
    )
    store.create_feature_group(
        "labels",
        pa.table({"customer_id": [1, 2], "event_ts": [datetime(2024, 2, 1)] * 2, "label": [0, 1]}),
        primary_key="customer_id",
        event_time="event_ts",
    )
    td = store.create_training_dataset(
        "fraud",
        "SELECT FEATURES age, amount, labels.label FROM labels AS OF labels.event_ts",
    )
    assert store.get_feature_vector(td, {"customer_id": 2}, return_type="dict") == {
        "age": 40,
        "amount": 2.0,
    }
    out = store.get_feature_vectors(td, [{"customer_id": 1}, {"customer_id": 3}])
    assert out.column_names == ["age", "amount"]
    assert out.to_pylist() == [{"age": 30, "amount": 1.0}, {"age": None, "amount": None}]
    # a new version of a feature group does not change what the dataset serves
    store.create_feature_group(
        "tx",
        pa.table({"customer_id": [2], "ts": [t], "amount": [99.0], "n": [1]}),
        primary_key="customer_id",
        event_time="ts",
        online=True,
        version=2,
    )
    assert store.get_feature_vector(td, {"customer_id": 2}) == [40, 2.0]
    assert store.get_feature_vector(["amount"], {"customer_id": 2}) == [99.0]
    # the version a dataset used must still be online
    store.set_online(store.catalog.feature_group(store.project, "tx", 1), False)
    with pytest.raises(FsqlError) as e:
        store.get_feature_vector(td, {"customer_id": 2})
    assert e.value.sqlstate == "55000"
