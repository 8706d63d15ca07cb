"""Point-in-time join benchmark.

A spine of 1,000,000 rows over 100,000 entities, feature groups of 5,000,000
and 500,000 rows, 5 features. Times ``SELECT FEATURES ... FROM spine AS OF
...`` end to end to an Arrow table (spine as a feature group, and as an Arrow
table from Python), against the same join hand-written in chDB SQL (spine in
a MergeTree table, and read from the same Arrow table) and in DuckDB, in the
same run. Also times planning (parse + resolve + generate) of
a 100-feature query over 20 feature groups. Prints JSON.

    .venv/bin/python benchmarks/pit_join.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

import fsql
from fsql.plan.features import plan_features
from fsql.sql.dialect import parse
from fsql.sql.engine_dialect import DIALECT

BASE_US = 1_704_067_200_000_000  # 2024-01-01
YEAR_US = 365 * 86_400_000_000


def make_data(n_spine: int, n_entities: int, n_big: int, n_small: int, seed: int = 7):
    rng = np.random.default_rng(seed)

    def times(n: int) -> pa.Array:
        return pa.array(BASE_US + rng.integers(0, YEAR_US, n), pa.int64()).cast(pa.timestamp("us"))

    spine = pa.table(
        {
            "customer_id": pa.array(rng.integers(0, n_entities, n_spine), pa.int64()),
            "ts": times(n_spine),
            "label": pa.array(rng.integers(0, 2, n_spine), pa.int8()),
        }
    )

    def fg(n: int, names: list[str]) -> pa.Table:
        keys = rng.integers(0, n_entities, n)
        ts = BASE_US + rng.integers(0, YEAR_US, n)
        # one row per (key, time): drop the rare duplicates
        order = np.lexsort((ts, keys))
        keys, ts = keys[order], ts[order]
        keep = np.ones(n, dtype=bool)
        keep[1:] = (keys[1:] != keys[:-1]) | (ts[1:] != ts[:-1])
        keys, ts = keys[keep], ts[keep]
        cols = {
            "customer_id": pa.array(keys, pa.int64()),
            "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us")),
        }
        for name in names:
            cols[name] = pa.array(rng.random(len(keys)))
        return pa.table(cols)

    big = fg(n_big, ["f1", "f2", "f3"])
    small = fg(n_small, ["f4", "f5"])
    return spine, big, small


def _ch_type(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "Int64"
    return "DateTime64(6)" if pa.types.is_timestamp(t) else "Float64"


def median_time(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


HAND_SQL = """
SELECT s.customer_id, s.ts, s.label, b.f1, b.f2, b.f3, m.f4, m.f5
FROM ref.spine AS s
ASOF LEFT JOIN ref.big AS b ON s.customer_id = b.customer_id AND s.ts >= b.ts
ASOF LEFT JOIN ref.small AS m ON s.customer_id = m.customer_id AND s.ts >= m.ts
SETTINGS join_use_nulls = 1
"""

DUCK_SQL = """
SELECT s.customer_id, s.ts, s.label, b.f1, b.f2, b.f3, m.f4, m.f5
FROM spine s
ASOF LEFT JOIN big b ON s.customer_id = b.customer_id AND s.ts >= b.ts
ASOF LEFT JOIN small m ON s.customer_id = m.customer_id AND s.ts >= m.ts
"""


def planning_time(store: fsql.Store, repeat: int) -> float:
    """Median ms to parse, resolve and generate a 100-feature, 20-group query."""
    schema = {"customer_id": "bigint", "ts": "timestamp"} | {
        f"g{0}_f{j}": "double precision" for j in range(5)
    }
    names = []
    for g in range(20):
        cols = {"customer_id": "bigint", "ts": "timestamp"} | {
            f"g{g}_f{j}": "double precision" for j in range(5)
        }
        store.create_feature_group(
            f"plan_g{g}", schema=cols, primary_key="customer_id", event_time="ts"
        )
        names += [f"plan_g{g}.g{g}_f{j}" for j in range(5)]
    del schema
    text = f"SELECT FEATURES {', '.join(names)} FROM spine AS OF spine.ts"
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        (node,) = parse(text)
        plan = plan_features(store, node)  # type: ignore[arg-type]
        plan.to_sql().sql(dialect=DIALECT, copy=False)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a tenth of the data")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    spine, big, small = make_data(
        1_000_000 // scale, 100_000 // scale, 5_000_000 // scale, 500_000 // scale
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = fsql.connect(f"{tmp}/store")
        try:
            store.create_feature_group("spine", spine, primary_key="customer_id", event_time="ts")
            store.create_feature_group("big", big, primary_key="customer_id", event_time="ts")
            store.create_feature_group("small", small, primary_key="customer_id", event_time="ts")
            # the hand-written reference reads plain MergeTree copies of the same rows
            eng = store.engine
            eng.execute("CREATE DATABASE IF NOT EXISTS ref")
            for name, table in (("spine", spine), ("big", big), ("small", small)):
                cols = ", ".join(f"{f.name} {_ch_type(f.type)}" for f in table.schema)
                eng.execute(
                    f"CREATE TABLE ref.{name} ({cols}) ENGINE = MergeTree "
                    "ORDER BY (customer_id, ts)"
                )
                eng.execute(f"INSERT INTO ref.{name} SELECT * FROM Python(fsql_input_0)", [table])
            sql_text = "SELECT FEATURES f1, f2, f3, f4, f5 FROM spine AS OF spine.ts"
            ours_sql, r1 = median_time(lambda: store.sql(sql_text), args.repeat)
            ours_py, r2 = median_time(
                lambda: store.get_features(["f1", "f2", "f3", "f4", "f5"], spine=spine, as_of="ts"),
                args.repeat,
            )
            hand, r3 = median_time(lambda: eng.query(HAND_SQL), args.repeat)
            # the same hand-written join reading the spine from the Arrow table
            # (what the Python-spine path hands to the engine)
            hand_py_sql = HAND_SQL.replace("ref.spine", "Python(fsql_input_0)")
            hand_py, r4 = median_time(lambda: eng.query(hand_py_sql, [spine]), args.repeat)
            plan_ms = planning_time(store, 50)
        finally:
            store.close()
    assert r1.num_rows == r2.num_rows == r3.num_rows == r4.num_rows == spine.num_rows  # type: ignore[attr-defined]
    result: dict[str, object] = {
        "spine_rows": spine.num_rows,
        "feature_rows": [big.num_rows, small.num_rows],
        "fsql_sql_spine_fg_s": round(ours_sql, 4),
        "fsql_python_spine_arrow_s": round(ours_py, 4),
        "chdb_hand_written_s": round(hand, 4),
        "ratio_sql_vs_chdb": round(ours_sql / hand, 3),
        "ratio_python_vs_chdb": round(ours_py / hand, 3),
        "chdb_hand_written_arrow_spine_s": round(hand_py, 4),
        "ratio_python_vs_chdb_arrow_spine": round(ours_py / hand_py, 3),
        "fsql_rows_per_s": round(spine.num_rows / ours_sql),
        "planning_100_features_20_groups_ms": round(plan_ms, 2),
    }
    try:
        import duckdb

        con = duckdb.connect()
        con.register("spine", spine)
        con.register("big", big)
        con.register("small", small)
        duck, _ = median_time(lambda: con.sql(DUCK_SQL).to_arrow_table(), args.repeat)
        result["duckdb_s"] = round(duck, 4)
        result["ratio_sql_vs_duckdb"] = round(ours_sql / duck, 3)
    except ImportError:
        result["duckdb_s"] = None
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
