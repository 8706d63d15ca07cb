"""Ingest benchmark: one commit of a generated Arrow table into a cached
feature group, against a plain chDB ``INSERT INTO t SELECT * FROM Python(tbl)``
into an equivalent MergeTree table, measured in the same run. A second
commit of new rows into the now non-empty group is timed too ("append").

Each measurement runs in its own process (chDB serves one folder per
process, and so each gets its own peak RSS); fsql and plain runs alternate
and the JSON reports medians.

    python benchmarks/ingest.py [--rows 5000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

TARGET_ROWS_PER_S = 1_000_000
TARGET_RATIO = 1.5


def make_table(rows: int, *, offset: int = 0, seed: int = 1, shuffled: bool = False) -> pa.Table:
    """6 columns: key, event time, two doubles, an int and a short string.
    (customer_id, event_ts) is unique; ``offset`` shifts the event times so
    two tables never overlap. Rows come in event-time order (distinct times,
    as an event log arrives), or ``shuffled``, so that no column rises from
    row to row and the commit's duplicate check must hash and sort."""
    rng = np.random.default_rng(seed)
    i = np.arange(rows, dtype=np.int64)
    base = np.datetime64("2024-01-01T00:00:00", "us") + np.timedelta64(offset, "s")
    countries = pa.array(["US", "GB", "DE", "FR", "CA", "BR", "IN", "JP"])
    if shuffled:
        i = rng.permutation(i)
    return pa.table(
        {
            "customer_id": i % 100_000,
            "event_ts": pa.array(base + (i * 1_000_000).astype("timedelta64[us]")),
            "amount": rng.lognormal(3.0, 1.0, rows),
            "amount_sum_7d": rng.lognormal(6.0, 1.0, rows),
            "tx_count_7d": rng.integers(0, 200, rows, dtype=np.int32),
            "country": countries.take(pa.array(rng.integers(0, len(countries), rows))),
        }
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(kind: str, rows: int, folder: str, shuffled: bool = False) -> dict[str, float]:
    from sqlglot import exp

    import fsql
    from fsql.store.offline import DIALECT, table_ref

    table = make_table(rows, shuffled=shuffled)
    second = make_table(rows, offset=rows, seed=2, shuffled=shuffled)
    out: dict[str, float] = {}
    with fsql.connect(folder) as store:
        fg = store.create_feature_group(
            "bench",
            schema=table.schema,
            primary_key="customer_id",
            event_time="event_ts",
        )
        if kind == "fsql":
            t0, c0 = time.perf_counter(), cpu_seconds()
            fg.insert(table)
            out["seconds"] = time.perf_counter() - t0
            out["cpu_seconds"] = cpu_seconds() - c0
            # a second commit into the now non-empty group (runs the overlap check)
            t0 = time.perf_counter()
            fg.insert(second)
            out["append_seconds"] = time.perf_counter() - t0
            assert fg.record is not None
            count = store.offline.count(fg.record)
            assert count == 2 * rows, count
        else:
            # the same MergeTree layout, minus the hidden commit columns
            target = table_ref(fg.record)
            plain = exp.Table(this=exp.to_identifier("plain", quoted=True), db=target.args["db"])
            store.engine.execute(f"CREATE TABLE {plain.sql(DIALECT)} AS {target.sql(DIALECT)}")
            store.engine.execute(
                f"ALTER TABLE {plain.sql(DIALECT)} DROP COLUMN _commit_id, DROP COLUMN _commit_time"
            )
            t0, c0 = time.perf_counter(), cpu_seconds()
            store.engine.insert(plain, table)
            out["seconds"] = time.perf_counter() - t0
            out["cpu_seconds"] = cpu_seconds() - c0
            t0 = time.perf_counter()
            store.engine.insert(plain, second)
            out["append_seconds"] = time.perf_counter() - t0
            n = store.engine.query(f"SELECT count() FROM {plain.sql(DIALECT)}").column(0)[0]
            assert n.as_py() == 2 * rows, n
            store.engine.execute(f"DROP TABLE {plain.sql(DIALECT)}")
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def run_worker(kind: str, rows: int, shuffled: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="fsql-bench-") as folder:
        command = [sys.executable, __file__, "--worker", kind, "--rows", str(rows)]
        command += ["--folder", folder, *(["--shuffled"] if shuffled else [])]
        proc = subprocess.run(
            command,
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", choices=("fsql", "plain"))
    parser.add_argument("--folder")
    parser.add_argument(
        "--shuffled", action="store_true", help="rows in random order instead of time order"
    )
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.rows, args.folder, args.shuffled)))
        return
    runs: dict[str, list[dict[str, float]]] = {"fsql": [], "plain": []}
    for _ in range(args.runs):
        for kind in ("plain", "fsql"):
            runs[kind].append(run_worker(kind, args.rows, args.shuffled))

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[kind])

    fsql_s, plain_s = med("fsql", "seconds"), med("plain", "seconds")
    fsql_append, plain_append = med("fsql", "append_seconds"), med("plain", "append_seconds")
    result = {
        "benchmark": "ingest",
        "rows": args.rows,
        "columns": 6,
        "row_order": "shuffled" if args.shuffled else "event time",
        "runs": args.runs,
        "fsql_rows_per_s": round(args.rows / fsql_s),
        "chdb_rows_per_s": round(args.rows / plain_s),
        "ratio_fsql_time_to_chdb": round(fsql_s / plain_s, 3),
        "fsql_append_rows_per_s": round(args.rows / fsql_append),
        "chdb_append_rows_per_s": round(args.rows / plain_append),
        "append_ratio": round(fsql_append / plain_append, 3),
        # runs are paired (plain then fsql, back to back): on a shared machine the
        # ratio within a pair is steadier than the ratio of medians
        "ratio_median_of_pairs": round(
            statistics.median(
                f["seconds"] / p["seconds"]
                for f, p in zip(runs["fsql"], runs["plain"], strict=True)
            ),
            3,
        ),
        "cpu_ratio": round(med("fsql", "cpu_seconds") / med("plain", "cpu_seconds"), 3),
        "fsql_seconds": [round(r["seconds"], 3) for r in runs["fsql"]],
        "chdb_seconds": [round(r["seconds"], 3) for r in runs["plain"]],
        "fsql_peak_rss_mb": round(med("fsql", "peak_rss_mb"), 1),
        "chdb_peak_rss_mb": round(med("plain", "peak_rss_mb"), 1),
        "targets": {"rows_per_s": TARGET_ROWS_PER_S, "ratio": TARGET_RATIO},
    }
    result["meets_targets"] = (
        result["fsql_rows_per_s"] >= TARGET_ROWS_PER_S
        and result["ratio_fsql_time_to_chdb"] <= TARGET_RATIO
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
