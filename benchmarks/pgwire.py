"""Postgres-wire benchmark: ``fsql serve`` against the real PostgreSQL on
this machine (127.0.0.1:5432, trust auth, database ``test``), both reached
with psycopg, in the same run:

- ``SELECT 1`` round trip: median and p99 over 2,000 calls;
- streaming a 1,000,000-row, 3-column result (bigint, double, text) to
  psycopg, text and binary, in rows/s (best of ``--runs``).

Targets: fsql streams at >= 0.5x PostgreSQL's rate and its round trip is
<= 3x PostgreSQL's.

    python benchmarks/pgwire.py [--rows 1000000] [--calls 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa

PG_DSN = os.environ.get("FSQL_BENCH_PG", "host=127.0.0.1 port=5432 dbname=test user=postgres")
TABLE = "pgwire_bench"
STREAM_TARGET = 0.5
LATENCY_TARGET = 3.0


def make_table(rows: int) -> pa.Table:
    i = np.arange(rows, dtype=np.int64)
    return pa.table(
        {
            "id": pa.array(i),
            "v": pa.array(i.astype(np.float64) / 7),
            "s": pa.array([f"customer_{k}" for k in range(rows)]),
        }
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_postgres(table: pa.Table) -> None:
    with psycopg.connect(PG_DSN, autocommit=True) as c:
        c.execute(f"DROP TABLE IF EXISTS {TABLE}")
        c.execute(f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, v double precision, s text)")
        with c.cursor().copy(f"COPY {TABLE} (id, v, s) FROM STDIN") as cp:
            cols = [table.column(n).to_pylist() for n in ("id", "v", "s")]
            for row in zip(*cols, strict=True):
                cp.write_row(row)
        c.execute(f"VACUUM ANALYZE {TABLE}")


def round_trips(dsn: str, calls: int) -> dict[str, float]:
    with psycopg.connect(dsn, autocommit=True) as c:
        for _ in range(50):  # warm up
            c.execute("SELECT 1").fetchone()
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            c.execute("SELECT 1").fetchone()
            times.append(time.perf_counter() - t0)
    times.sort()
    return {
        "median_us": round(statistics.median(times) * 1e6, 1),
        "p99_us": round(times[int(len(times) * 0.99) - 1] * 1e6, 1),
    }


def stream(dsn: str, query: str, rows: int, runs: int, binary: bool) -> float:
    best = 0.0
    with psycopg.connect(dsn, autocommit=True) as c:
        for _ in range(runs):
            t0 = time.perf_counter()
            cur = c.cursor(binary=binary)
            cur.execute(query)
            n = 0
            while batch := cur.fetchmany(50_000):
                n += len(batch)
            elapsed = time.perf_counter() - t0
            assert n == rows, (n, rows)
            best = max(best, rows / elapsed)
    return round(best)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    import fsql

    table = make_table(args.rows)
    load_postgres(table)
    workdir = Path(tempfile.mkdtemp(prefix="fsql-pgwire-"))
    store_path = workdir / "store"
    store = fsql.connect(store_path)
    try:
        store.create_feature_group("bench", table, primary_key="id")
    finally:
        store.close()
    del table

    port = free_port()
    fsql_bin = Path(sys.executable).parent / "fsql"
    log = (workdir / "server.log").open("w")
    proc = subprocess.Popen(
        [
            str(fsql_bin),
            "--store",
            str(store_path),
            "serve",
            "--port",
            str(port),
            "--auth",
            "trust",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        fsql_dsn = f"host=127.0.0.1 port={port} dbname=default user=bench"
        deadline = time.time() + 120
        while "fsql serving" not in (workdir / "server.log").read_text():
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(
                    "fsql serve did not start:\n" + (workdir / "server.log").read_text()
                )
            time.sleep(0.2)

        pg_rt = round_trips(PG_DSN, args.calls)
        fs_rt = round_trips(fsql_dsn, args.calls)
        q_pg = f"SELECT id, v, s FROM {TABLE}"
        q_fs = "SELECT id, v, s FROM bench"
        result: dict[str, object] = {
            "select1_round_trip": {
                "fsql": fs_rt,
                "postgres": pg_rt,
                "ratio_median": round(fs_rt["median_us"] / pg_rt["median_us"], 2),
                "ratio_p99": round(fs_rt["p99_us"] / pg_rt["p99_us"], 2),
                "target_ratio_max": LATENCY_TARGET,
            }
        }
        for binary in (False, True):
            pg_rate = stream(PG_DSN, q_pg, args.rows, args.runs, binary)
            fs_rate = stream(fsql_dsn, q_fs, args.rows, args.runs, binary)
            result[f"stream_{args.rows}_rows_{'binary' if binary else 'text'}"] = {
                "fsql_rows_per_s": fs_rate,
                "postgres_rows_per_s": pg_rate,
                "ratio": round(fs_rate / pg_rate, 2),
                "target_ratio_min": STREAM_TARGET,
            }
        print(json.dumps(result, indent=2))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        with psycopg.connect(PG_DSN, autocommit=True) as c:
            c.execute(f"DROP TABLE IF EXISTS {TABLE}")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
