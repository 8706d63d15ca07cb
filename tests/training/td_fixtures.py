"""Feature groups the training-dataset tests build on."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

import fsql


def day(d: int, h: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, 1) + dt.timedelta(days=d, hours=h)


def make_feature_groups(store: fsql.Store, n_customers: int = 40) -> None:
    """``tx`` (amount features per customer and day) and ``labels`` (one
    label per customer every few days), both keyed by customer id."""
    tx_rows = {"cid": [], "ts": [], "amount": [], "count_7d": [], "country": []}
    for c in range(n_customers):
        for d in range(0, 20, 2):
            tx_rows["cid"].append(c)
            tx_rows["ts"].append(day(d, c % 5))
            tx_rows["amount"].append(None if (c + d) % 17 == 0 else float(c * 10 + d) / 3)
            tx_rows["count_7d"].append(c + d)
            tx_rows["country"].append(["de", "fr", None, "it"][(c + d) % 4])
    store.create_feature_group(
        "tx",
        pa.table(
            tx_rows,
            schema=pa.schema(
                [
                    ("cid", pa.int64()),
                    ("ts", pa.timestamp("us")),
                    ("amount", pa.float64()),
                    ("count_7d", pa.int64()),
                    ("country", pa.string()),
                ]
            ),
        ),
        primary_key="cid",
        event_time="ts",
        description="transaction aggregates",
    )
    label_rows = {"cid": [], "ts": [], "label": []}
    for c in range(n_customers):
        for d in range(1, 21, 5):
            label_rows["cid"].append(c)
            label_rows["ts"].append(day(d, 12))
            label_rows["label"].append(int((c * 7 + d) % 3 == 0))
    store.create_feature_group(
        "labels",
        pa.table(
            label_rows,
            schema=pa.schema(
                [("cid", pa.int64()), ("ts", pa.timestamp("us")), ("label", pa.int64())]
            ),
        ),
        primary_key="cid",
        event_time="ts",
    )
