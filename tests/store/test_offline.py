"""Commits are atomic: an injected failure or a SIGKILL part-way through a
large insert leaves no row of that commit visible, and the store works on."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import fsql
from fsql.store import offline
from fsql.store.offline import _may_have_duplicates

T0 = np.datetime64("2024-01-01T00:00:00", "us")


def table(n: int, *, start: int = 0) -> pa.Table:
    i = np.arange(start, start + n, dtype=np.int64)
    return pa.table(
        {
            "customer_id": i % 1000,
            "event_ts": pa.array(T0 + (i * 1_000_000).astype("timedelta64[us]")),
            "amount": i.astype(np.float64),
        }
    )


def staging_tables(store: fsql.Store) -> list[str]:
    found = store.engine.query("SELECT name FROM system.tables WHERE startsWith(name, '_staging_')")
    return found.column("name").to_pylist()


def test_injected_failure_after_staging_writes_nothing(store):
    fg = store.create_feature_group(
        "tx", table(100), primary_key="customer_id", event_time="event_ts"
    )
    with pytest.raises(RuntimeError, match="injected"):
        store.offline.insert(fg.record, table(50, start=100), fail_after_staging=True)
    assert fg.read().num_rows == 100
    states = [c.state for c in store.catalog.commits(fg.record)]
    assert states == ["committed", "aborted"]
    assert staging_tables(store) == []
    # an upsert that failed must not flag the group as having upserts
    with pytest.raises(RuntimeError):
        store.offline.insert(fg.record, table(10), fail_after_staging=True)
    assert not fg._refresh().has_upserts
    fg.insert(table(50, start=100))
    assert fg.read().num_rows == 150


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np, pyarrow as pa
    import fsql

    path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    T0 = np.datetime64("2024-01-01T00:00:00", "us")

    def table(n, start=0):
        i = np.arange(start, start + n, dtype=np.int64)
        return pa.table({
            "customer_id": i % 1000,
            "event_ts": pa.array(T0 + (i * 1_000_000).astype("timedelta64[us]")),
            "amount": i.astype(np.float64),
        })

    store = fsql.connect(path)
    fg = store.create_feature_group("tx", table(1000), primary_key="customer_id",
                                    event_time="event_ts")
    engine = store.engine
    run = engine.execute

    def execute(sql, inputs=()):
        if mode == "during" and sql.startswith("INSERT INTO"):
            print("inserting", flush=True)      # the parent kills us mid-insert
        run(sql, inputs)
        if mode == "attached" and "ATTACH PARTITION" in sql:
            print("attached", flush=True)       # rows are in, commit not marked
            time.sleep(600)

    engine.execute = execute
    big = table(n, start=1000)
    print("ready", flush=True)
    fg.insert(big)
    print("committed", flush=True)
    time.sleep(600)
    """
)


def run_and_kill(tmp_path: Path, mode: str, rows: int, wait_for: str, delay: float) -> str:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    store_path = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store_path), mode, str(rows)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    seen = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline().strip()
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            if line == wait_for:
                time.sleep(delay)
                break
        assert wait_for in seen, (seen, proc.stderr.read() if proc.poll() is not None else "")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert "committed" not in seen
    return str(store_path)


def check_recovered(store_path: str) -> None:
    with fsql.connect(store_path) as store:
        fg = store.get_feature_group("tx")
        rows = fg.read()
        assert rows.num_rows == 1000  # only the first commit
        assert max(rows.column("amount").to_pylist()) == 999.0
        states = [c.state for c in store.catalog.commits(fg.record)]
        assert states == ["committed", "aborted"]
        assert staging_tables(store) == []
        raw = store.engine.query("SELECT count() AS n FROM fsql_default.tx_v1")
        assert raw.column("n").to_pylist() == [1000]
        # the store works on: a new commit lands and reads back
        fg.insert(table(10, start=5000))
        assert fg.read().num_rows == 1010


def test_sigkill_during_large_insert(tmp_path):
    path = run_and_kill(tmp_path, "during", 3_000_000, "inserting", 0.1)
    check_recovered(path)


def test_sigkill_after_attach_before_commit_is_marked(tmp_path):
    path = run_and_kill(tmp_path, "attached", 200_000, "attached", 0.0)
    check_recovered(path)


def test_duplicate_prefilter_is_exact_when_it_says_no():
    n = 200_000
    t = table(n)
    assert not _may_have_duplicates(t, ["customer_id", "event_ts"])
    dup = pa.concat_tables([t, t.slice(n // 2, 1)])
    assert _may_have_duplicates(dup, ["customer_id", "event_ts"])
    # a key alone repeats, the pair does not
    assert _may_have_duplicates(t, ["customer_id"])
    words = pa.table(
        {
            "k": pa.chunked_array([["a", "b"], ["c", "a"]]),
            "t": [dt.date(2024, 1, i) for i in (1, 1, 1, 2)],
        }
    )
    assert not _may_have_duplicates(words, ["k", "t"])
    assert _may_have_duplicates(words, ["k"])


def test_a_column_that_rises_row_by_row_proves_the_rows_distinct():
    times = pa.array([dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i) for i in range(6)])
    keys = pa.array([1, 2, 1, 2, 1, 2], pa.int64())  # keys repeat, times never do
    rows = pa.table({"k": keys, "ts": times})
    assert offline._strictly_increasing(rows.column("ts"))
    assert not _may_have_duplicates(rows, ["k", "ts"])
    # a tie or a step back in time: the hash check decides, and finds the duplicate
    back = pa.table({"k": keys, "ts": pa.concat_arrays([times[:5], times[4:5]])})
    assert not offline._strictly_increasing(back.column("ts"))
    assert _may_have_duplicates(back, ["k", "ts"]) is False  # (2, t4) vs (1, t4): distinct
    dup = pa.table({"k": pa.array([1, 2, 1, 2, 1, 1], pa.int64()), "ts": back.column("ts")})
    assert _may_have_duplicates(dup, ["k", "ts"])  # (1, t4) twice


def test_hash_collision_falls_back_to_the_exact_check(store):
    """Two distinct keys built to collide in the prefilter's hash: the exact
    check runs, finds no duplicate, and the commit lands."""
    m0, m1 = (int(m) for m in offline._MULTIPLIERS[:2])

    def signed(x: int) -> int:
        x %= 2**64
        return x - 2**64 if x >= 2**63 else x

    # (0, 0) last: neither column rises from row to row, so the hash runs
    a = [1, signed(1 + m1), 0]
    b = [2, signed(2 - m0), 0]
    rows = pa.table(
        {"a": pa.array(a, pa.int64()), "b": pa.array(b, pa.int64()), "v": [1.0, 2.0, 3.0]}
    )
    assert offline._may_have_duplicates(rows, ["a", "b"])  # a collision...
    fg = store.create_feature_group("pairs", rows, primary_key=["a", "b"])
    assert sorted(fg.read().column("v").to_pylist()) == [1.0, 2.0, 3.0]  # ...but no duplicate
    with pytest.raises(fsql.FsqlError) as e:
        fg.insert(pa.concat_tables([rows, rows.slice(0, 1)]))
    assert e.value.sqlstate == "23505"
