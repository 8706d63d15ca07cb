from __future__ import annotations

import datetime as dt

import pyarrow as pa


def test_create_insert_read_roundtrip(store):
    t = pa.table(
        {
            "customer_id": [1, 2],
            "event_ts": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)],
            "amount": [1.5, None],
        }
    )
    fg = store.create_feature_group("tx", t, primary_key="customer_id", event_time="event_ts")
    assert fg.read().to_pylist() == t.to_pylist()
