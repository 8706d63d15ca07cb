"""fsql.dbapi reads results as a stream: fetchone/fetchmany convert one
batch at a time and never hold the whole result, so memory stays flat as
results grow; rowcount, errors mid-stream and releasing the engine session."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import fsql
import fsql.dbapi as dbapi

QUERY = "SELECT number AS id, number / 7.0 AS v, 'customer_' || number::text AS s FROM numbers({n})"
MiB = 1 << 20

# Peak RSS of a fresh process while a DB-API cursor reads n rows with
# fetchmany (polled every 5 ms), after a warm-up query.
PEAK_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading, time
    import psutil
    import fsql.dbapi
    query, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    conn = fsql.dbapi.connect(path)
    cur = conn.cursor()
    cur.execute(query.format(n=1000))
    cur.fetchall()
    proc = psutil.Process()
    base = peak = proc.memory_info().rss
    done = False
    def watch():
        global peak
        while not done:
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.005)
    watcher = threading.Thread(target=watch)
    watcher.start()
    cur.execute(query.format(n=n))
    rows = 0
    while batch := cur.fetchmany(10000):
        rows += len(batch)
    done = True
    watcher.join()
    conn.close()
    print(json.dumps({"rows": rows, "base": base, "peak": peak}))
    """
)


def _peak(path: Path, n: int) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, QUERY, str(n), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=path.parent,  # not the checkout, whose fsql/ folder is not the installed package
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def test_fetchmany_memory_does_not_grow_with_the_result(store_path: Path) -> None:
    fsql.connect(store_path).close()
    small = _peak(store_path, 1_500_000)
    large = _peak(store_path, 6_000_000)
    assert (small["rows"], large["rows"]) == (1_500_000, 6_000_000)
    grew = (large["peak"] - large["base"]) - (small["peak"] - small["base"])
    print(
        f"dbapi fetchmany peak RSS over base: 1.5M rows {(small['peak'] - small['base']) // MiB}"
        f" MiB, 6M rows {(large['peak'] - large['base']) // MiB} MiB"
    )
    # materialized, 6M rows took ~1.2 GB more than 1.5M rows (~0.4 GB)
    assert grew < 150 * MiB, grew // MiB
    assert large["peak"] - large["base"] < 300 * MiB


@pytest.fixture
def conn(store_path: Path) -> Iterator[dbapi.Connection]:
    c = dbapi.connect(store_path)
    try:
        yield c
    finally:
        c.close()


def _busy(conn: dbapi.Connection) -> int:
    """Engine sessions taken from the embedded engine's pool."""
    return len(conn.store.engine._busy)


def _wait_idle(conn: dbapi.Connection, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while _busy(conn) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _busy(conn) == 0


def test_rowcount_is_known_for_one_batch_and_after_the_last(conn: dbapi.Connection) -> None:
    cur = conn.cursor()
    cur.execute(QUERY.format(n=10))
    assert cur.rowcount == 10
    cur.execute(QUERY.format(n=1_000_000))
    assert cur.rowcount == -1  # more than one batch: not read yet
    assert cur.fetchone() == (0, 0.0, "customer_0")
    assert len(cur.fetchmany(99_999)) == 99_999
    assert cur.fetchone() == (100_000, 100_000 / 7, "customer_100000")
    rest = cur.fetch_arrow_table()  # the rows not fetched yet, as Arrow
    assert rest.num_rows == 1_000_000 - 100_001
    assert rest.column("id")[0].as_py() == 100_001
    assert cur.rowcount == 1_000_000
    assert cur.fetchone() is None
    assert _busy(conn) == 0


def test_an_error_mid_stream_is_raised_by_the_fetch(conn: dbapi.Connection) -> None:
    cur = conn.cursor()
    # the engine runs a few blocks ahead of the reader: the row that fails
    # is far enough in for the first rows to be fetched before it
    cur.execute("SELECT number, throwIf(number = 2000000, 'boom') AS t FROM numbers(3000000)")
    got = 0
    with pytest.raises(dbapi.DatabaseError) as e:
        while batch := cur.fetchmany(10000):
            got += len(batch)
    assert 0 < got <= 2_000_000
    assert "boom" in str(e.value) and e.value.sqlstate == "XX000"
    assert _wait_idle(conn)
    assert conn.cursor().execute("SELECT count(*) FROM numbers(5)").fetchall() == [(5,)]


def test_closing_a_cursor_mid_stream_gives_the_engine_session_back(
    conn: dbapi.Connection,
) -> None:
    cur = conn.cursor()
    cur.execute("SELECT number FROM numbers(1000000000)")
    assert len(cur.fetchmany(1000)) == 1000
    assert _busy(conn) == 1
    cur.close()
    assert _wait_idle(conn)
    other = conn.cursor()
    other.execute("SELECT number FROM numbers(1000000000)")
    other.execute("SELECT 1 AS one")  # a new statement drops the old stream
    assert other.fetchall() == [(1,)]
    assert _wait_idle(conn)
    left_open = conn.cursor()
    left_open.execute("SELECT number FROM numbers(1000000000)")
    assert _busy(conn) == 1
    conn.close()  # closes its cursors first
    assert left_open.closed
