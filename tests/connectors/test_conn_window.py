"""The window-function form of the point-in-time join (Trino has no ASOF
JOIN): run on chDB against a brute-force oracle, and its Trino text parsed
back and run on chDB too."""

from __future__ import annotations

import datetime as dt
import os
import random

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from fsql.plan import window as pw
from fsql.plan.features import execute_plan, plan_features
from fsql.sql.dialect import parse

BASE = dt.datetime(2024, 1, 1)


def _rows(rng: random.Random, n: int, keys: int, value: str) -> list[dict]:
    seen = set()
    out = []
    while len(out) < n:
        k, day = rng.randrange(keys), rng.randrange(60)
        if (k, day) in seen:
            continue
        seen.add((k, day))
        v = None if rng.random() < 0.1 else round(rng.random() * 100, 2)
        out.append({"customer_id": k, "ts": BASE + dt.timedelta(days=day), value: v})
    return out


def _oracle(spine: list[dict], groups: list[tuple[list[dict], str]]) -> list[tuple]:
    """Per spine row: per group, the row with equal key and the greatest
    event time <= the spine time (None when none)."""
    out = []
    for s in spine:
        row = [s["customer_id"], s["at"]]
        for rows, value in groups:
            cands = [r for r in rows if r["customer_id"] == s["customer_id"] and r["ts"] <= s["at"]]
            row.append(max(cands, key=lambda r: r["ts"])[value] if cands else None)
        out.append(tuple(row))
    return out


def _spine(rng: random.Random, n: int, keys: int) -> pa.Table:
    rows = [
        {
            "customer_id": rng.randrange(keys + 2),
            "at": BASE + dt.timedelta(days=rng.randrange(-5, 70)),
        }
        for _ in range(n)
    ]
    rows += rows[:5]  # duplicate spine rows each yield a row
    return pa.Table.from_pylist(rows)


def _tuples(table: pa.Table, names: list[str]) -> list[tuple]:
    cols = [table.column(n).to_pylist() for n in names]
    return list(zip(*cols, strict=True))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_window_form_matches_oracle_on_chdb(store, seed):
    rng = random.Random(seed)
    tx = _rows(rng, 150, 20, "amount")
    prof = _rows(rng, 80, 20, "age")
    store.create_feature_group(
        "tx", pa.Table.from_pylist(tx), primary_key="customer_id", event_time="ts"
    )
    fg = store.create_feature_group(
        "prof", pa.Table.from_pylist(prof), primary_key="customer_id", event_time="ts"
    )
    # an upsert: a later commit of the same key and time replaces the value
    fixed = dict(prof[0], age=-1.0)
    fg.insert(pa.Table.from_pylist([fixed]))
    prof[0] = fixed
    spine = _spine(rng, 200, 20)
    (node,) = parse("SELECT FEATURES amount, age AS OF at")
    plan = plan_features(store, node, spine=spine)
    tree = pw.window_sql(plan, dialect="clickhouse")
    assert not list(tree.find_all(exp.Join)) or all(
        (j.args.get("kind") or "").upper() != "ASOF" for j in tree.find_all(exp.Join)
    )
    got = store.engine.query(tree.sql("clickhouse"), plan.inputs)
    names = ["customer_id", "at", "amount", "age"]
    want = _oracle(spine.to_pylist(), [(tx, "amount"), (prof, "age")])
    assert _tuples(got, names) == want
    # and the ASOF planner agrees
    assert _tuples(execute_plan(store, plan), names) == want


def test_trino_text_round_trips_on_chdb(store):
    rng = random.Random(7)
    tx = _rows(rng, 100, 10, "amount")
    store.create_feature_group(
        "tx", pa.Table.from_pylist(tx), primary_key="customer_id", event_time="ts"
    )
    spine = _spine(rng, 60, 10)
    (node,) = parse("SELECT FEATURES amount AS OF at")
    plan = plan_features(store, node, spine=spine)
    text = pw.window_sql(plan, spine=pw.values_relation(plan.spine_input)).sql(
        "trino", identify=True
    )
    assert "ASOF" not in text.upper()
    assert "ROW_NUMBER() OVER (PARTITION BY" in text and "VALUES" in text
    back = sqlglot.parse_one(text, read="trino")
    assert isinstance(back, exp.Select)
    back.set("settings", [exp.EQ(this=exp.var("join_use_nulls"), expression=exp.Literal.number(1))])
    got = store.engine.query(back.sql("clickhouse"))
    want = _oracle(spine.to_pylist(), [(tx, "amount")])
    assert _tuples(got, ["customer_id", "at", "amount"]) == want


def test_latest_values_window_form(store):
    rng = random.Random(11)
    tx = _rows(rng, 60, 8, "amount")
    store.create_feature_group(
        "tx", pa.Table.from_pylist(tx), primary_key="customer_id", event_time="ts"
    )
    (node,) = parse("SELECT FEATURES amount AS OF TIMESTAMP '2024-02-01 00:00:00'")
    plan = plan_features(store, node)
    got = store.engine.query(pw.window_sql(plan, dialect="clickhouse").sql("clickhouse"))
    cut = dt.datetime(2024, 2, 1)
    want = {}
    for r in sorted(tx, key=lambda r: r["ts"]):
        if r["ts"] <= cut:
            want[r["customer_id"]] = r["amount"]
    assert dict(_tuples(got, ["customer_id", "amount"])) == want


def test_window_form_with_on_demand_postgres(store, pg):
    rng = random.Random(5)
    prof = _rows(rng, 40, 6, "age")
    t = pg.table("od_win", "customer_id bigint, ts timestamp, age double precision")
    for r in prof:
        pg.execute(f"INSERT INTO {t} VALUES (%s, %s, %s)", (r["customer_id"], r["ts"], r["age"]))
    store.create_connector("crm", "postgres", {"database": "test"})
    store.create_on_demand_feature_group(
        "prof",
        connector="crm",
        query=f"SELECT * FROM {t}",
        primary_key="customer_id",
        event_time="ts",
    )
    tx = _rows(rng, 50, 6, "amount")
    store.create_feature_group(
        "tx", pa.Table.from_pylist(tx), primary_key="customer_id", event_time="ts"
    )
    spine = _spine(rng, 50, 6)
    (node,) = parse("SELECT FEATURES amount, age AS OF at")
    plan = plan_features(store, node, spine=spine)
    got = store.engine.query(
        pw.window_sql(plan, dialect="clickhouse").sql("clickhouse"), plan.inputs
    )
    want = _oracle(spine.to_pylist(), [(tx, "amount"), (prof, "age")])
    assert _tuples(got, ["customer_id", "at", "amount", "age"]) == want
    assert _tuples(execute_plan(store, plan), ["customer_id", "at", "amount", "age"]) == want


def test_federated_sql_names_trino_catalogs(store, pg):
    t = pg.table("od_fed", "customer_id bigint, ts timestamp, age int", "(1, '2024-01-01', 5)")
    store.create_connector("crm", "postgres", {"database": "test"})
    store.create_on_demand_feature_group(
        "prof",
        connector="crm",
        query=f"SELECT * FROM {t}",
        primary_key="customer_id",
        event_time="ts",
    )
    store.create_feature_group(
        "tx",
        pa.table({"customer_id": [1], "ts": [BASE], "amount": [2.0]}),
        primary_key="customer_id",
        event_time="ts",
    )
    spine = pa.table({"customer_id": [1], "at": [BASE + dt.timedelta(days=1)]})
    (node,) = parse("SELECT FEATURES amount, age AS OF at")
    plan = plan_features(store, node, spine=spine)
    text = pw.federated_sql(store, plan, offline_catalog="ch", catalogs={"crm": "pg"})
    assert text == store.federated_sql(
        "SELECT FEATURES amount, age AS OF at",
        spine=spine,
        offline_catalog="ch",
        catalogs={"crm": "pg"},
    )
    assert f'"pg"."public"."{t}"' in text
    assert '"ch"."fsql_default"."tx_v1"' in text
    assert sqlglot.parse_one(text, read="trino") is not None
    from fsql.errors import FsqlError

    with pytest.raises(FsqlError) as e:
        pw.federated_sql(store, plan, offline_catalog="ch")
    assert e.value.sqlstate == "0A000" and "crm" in str(e.value)


TRINO_URL = os.environ.get("FSQL_TEST_TRINO_URL")


@pytest.mark.skipif(not TRINO_URL, reason="FSQL_TEST_TRINO_URL is not set (no Trino server)")
def test_trino_source_and_federated_join(store):
    store.create_connector("tr", "trino", {"url": TRINO_URL or ""})
    store.create_on_demand_feature_group(
        "prof",
        connector="tr",
        query="SELECT k AS customer_id, ts, v FROM (VALUES "
        "(1, TIMESTAMP '2024-01-01 00:00:00', 1.5),"
        " (1, TIMESTAMP '2024-02-01 00:00:00', 2.5), (2, TIMESTAMP '2024-01-05 00:00:00', 9.0))"
        " AS t(k, ts, v)",
        primary_key="customer_id",
        event_time="ts",
    )
    assert store.sql("SELECT count(*) AS n FROM prof").column("n").to_pylist() == [3]
    spine = pa.table(
        {"customer_id": [1, 1, 2, 3], "at": [BASE + dt.timedelta(days=d) for d in (10, 40, 1, 5)]}
    )
    got = store.run_federated("SELECT FEATURES v AS OF at", connector="tr", spine=spine)
    assert got.column("v").to_pylist() == [1.5, 2.5, None, None]


def test_window_form_null_spine_times_and_date_event_times(store):
    days = pa.table(
        {
            "customer_id": [1, 1, 2],
            "day": [dt.date(2024, 1, 1), dt.date(2024, 1, 10), dt.date(2024, 1, 5)],
            "level": [1, 2, 3],
        }
    )
    store.create_feature_group("levels", days, primary_key="customer_id", event_time="day")
    spine = pa.table(
        {
            "customer_id": [1, 1, 2, 1, 2],
            "at": [
                dt.datetime(2024, 1, 9, 23, 59),
                dt.datetime(2024, 1, 10, 0, 0),
                None,
                dt.datetime(2023, 12, 31),
                dt.datetime(2024, 1, 5),
            ],
        }
    )
    (node,) = parse("SELECT FEATURES level AS OF at")
    plan = plan_features(store, node, spine=spine)
    got = store.engine.query(
        pw.window_sql(plan, dialect="clickhouse").sql("clickhouse"), plan.inputs
    )
    assert got.column("level").to_pylist() == [1, 2, None, None, 3]
    assert got.column("level").to_pylist() == execute_plan(store, plan).column("level").to_pylist()
