"""The demo store: deterministic, with real signal, and its point-in-time
example agrees with a brute-force lookup."""

from __future__ import annotations

import pyarrow as pa

from fsql.demo import build, limit_change_example, pit_query


def test_demo_store(store):
    counts = build(store, customers=120, seed=3)
    assert counts["fraud_labels"] == counts["transactions"] > 1000
    assert counts["customer_profiles"] == 120 + 12
    tx = store.get_feature_group("transactions").read()
    # rolling windows include the current transaction
    assert all(c >= 1 for c in tx.column("tx_count_1d").to_pylist())
    first = tx.slice(0, 1).to_pylist()[0]
    assert first["amount_sum_1d"] == first["amount"]
    # fraud concentrates where 7-day spend is high
    rates = (
        store.sql(
            "SELECT t.amount_sum_7d >= 1000 AS high, "
            "avg(CASE WHEN l.is_fraud THEN 1 ELSE 0 END) AS r "
            "FROM transactions t JOIN fraud_labels l "
            "ON t.customer_id = l.customer_id AND t.event_ts = l.event_ts GROUP BY 1 ORDER BY 1"
        )
        .column("r")
        .to_pylist()
    )
    assert rates[1] > 5 * rates[0]
    # the corrected ages are upserts: old values stay readable
    profiles = store.get_feature_group("customer_profiles")
    assert profiles.record.has_upserts
    commits = profiles.commits()
    assert len(commits) == 3
    before = profiles.read(system_time=commits[1].commit_time_us)
    after = profiles.read()
    changed = [
        (b["customer_id"], b["age"], a["age"])
        for b, a in zip(before.to_pylist(), after.to_pylist(), strict=True)
        if b["age"] != a["age"]
    ]
    assert len(changed) == 5 and all(new == old + 1 for _, old, new in changed)
    # a rebuild gives the same data
    again = build(store, customers=120, seed=3)
    assert again == counts
    assert store.get_feature_group("transactions").read().equals(tx)


def test_point_in_time_example_matches_brute_force(store):
    build(store, customers=120, seed=3)
    example = limit_change_example(store)
    assert example is not None
    customer, at = example
    out = store.sql(pit_query(customer, at))
    assert out.num_rows >= 2
    profiles = [
        r
        for r in store.get_feature_group("customer_profiles").read().to_pylist()
        if r["customer_id"] == customer
    ]
    for row in out.to_pylist():
        valid = [p for p in profiles if p["updated_at"] <= row["event_ts"]]
        expected = max(valid, key=lambda p: p["updated_at"])["credit_limit"]
        assert row["credit_limit"] == expected
    limits = out.column("credit_limit").to_pylist()
    assert len(set(limits)) == 2  # the example shows the change
    assert isinstance(out, pa.Table)
