"""On-demand benchmark: a point-in-time join of a 100,000-row spine with a
cached feature group and an on-demand feature group over a 1,000,000-row
PostgreSQL table, against copying that table into a cached feature group
first and joining that, in the same run (same store, same spine).

Needs the local PostgreSQL (127.0.0.1:5432, database test). The source
table is created with a unique name and dropped at the end.

    python benchmarks/on_demand.py [--rows 1000000] [--spine 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv


def source_table(rows: int, customers: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    base = np.datetime64("2024-01-01T00:00:00", "us")
    # unique (customer, time): spread each customer's rows over a year
    i = np.arange(rows, dtype=np.int64)
    ts = base + (i // customers * 86_400 + rng.integers(0, 86_000, rows)).astype("timedelta64[s]")
    return pa.table(
        {
            "id": i % customers,
            "age": rng.integers(18, 90, rows).astype(np.int32),
            "score": rng.random(rows),
            "updated_at": pa.array(ts, pa.timestamp("us")),
        }
    )


def load_postgres(table: str, data: pa.Table) -> float:
    import io

    import psycopg

    t0 = time.perf_counter()
    buf = io.BytesIO()
    pacsv.write_csv(data, buf, pacsv.WriteOptions(include_header=False))
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", autocommit=True) as c:
        c.execute(
            f"CREATE TABLE {table} (id bigint, age int, score double precision, "
            "updated_at timestamp)"
        )
        with c.cursor().copy(f"COPY {table} FROM STDIN (FORMAT csv)") as cp:
            cp.write(buf.getvalue())
        c.execute(f"ANALYZE {table}")
    return time.perf_counter() - t0


def drop_postgres(table: str) -> None:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", autocommit=True) as c:
        c.execute(f"DROP TABLE IF EXISTS {table}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--spine", type=int, default=100_000)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    import fsql

    rng = np.random.default_rng(2)
    table = f"bench_od_{uuid.uuid4().hex[:8]}"
    data = source_table(args.rows, args.customers)
    pg_load_s = load_postgres(table, data)
    tx_rows = args.rows // 2
    tx = pa.table(
        {
            "customer_id": np.arange(tx_rows, dtype=np.int64) % args.customers,
            "event_ts": pa.array(
                np.datetime64("2024-01-01T00:00:00", "us")
                + (np.arange(tx_rows) // args.customers * 86_400 * 2 + 3600).astype(
                    "timedelta64[s]"
                ),
                pa.timestamp("us"),
            ),
            "amount": rng.random(tx_rows),
        }
    )
    spine = pa.table(
        {
            "customer_id": rng.integers(0, args.customers, args.spine),
            "ts": pa.array(
                np.datetime64("2024-01-01T00:00:00", "us")
                + rng.integers(0, 86_400 * 20, args.spine).astype("timedelta64[s]"),
                pa.timestamp("us"),
            ),
        }
    )
    results: dict[str, object] = {}
    try:
        with tempfile.TemporaryDirectory() as folder, fsql.connect(folder) as store:
            store.create_feature_group("tx", tx, primary_key="customer_id", event_time="event_ts")
            store.create_connector("crm", "postgres", {"database": "test"})
            store.create_on_demand_feature_group(
                "profile",
                connector="crm",
                query=f"SELECT id AS customer_id, age, score, updated_at FROM {table}",
                primary_key="customer_id",
                event_time="updated_at",
            )
            on_demand, copied, copy_s = [], [], []
            checks = []
            for run in range(args.runs):
                t0 = time.perf_counter()
                a = store.get_features(
                    ["amount", "profile.age", "profile.score"], spine=spine, as_of="ts"
                )
                on_demand.append(time.perf_counter() - t0)

                t0 = time.perf_counter()
                rows = store.sql("SELECT * FROM profile")
                name = f"profile_copy_{run}"
                store.create_feature_group(
                    name, rows, primary_key="customer_id", event_time="updated_at"
                )
                copy_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                b = store.get_features(
                    ["amount", f"{name}.age", f"{name}.score"], spine=spine, as_of="ts"
                )
                copied.append(time.perf_counter() - t0)
                checks.append(
                    a.num_rows == b.num_rows == args.spine
                    and a.column("age").to_pylist() == b.column("age").to_pylist()
                )
            od = statistics.median(on_demand)
            ref_total = statistics.median(c + j for c, j in zip(copy_s, copied, strict=True))
            results = {
                "benchmark": "on_demand_pit_join",
                "source_rows": args.rows,
                "cached_fg_rows": tx_rows,
                "spine_rows": args.spine,
                "runs": args.runs,
                "postgres_load_s": round(pg_load_s, 3),
                "on_demand_join_s": round(od, 3),
                "reference_copy_s": round(statistics.median(copy_s), 3),
                "reference_join_s": round(statistics.median(copied), 3),
                "reference_copy_then_join_s": round(ref_total, 3),
                "ratio_on_demand_vs_copy_then_join": round(od / ref_total, 3),
                "ratio_on_demand_vs_join_of_copy": round(od / statistics.median(copied), 3),
                "same_results": all(checks),
            }
    finally:
        drop_postgres(table)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
