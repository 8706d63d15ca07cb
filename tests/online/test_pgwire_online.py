"""`SELECT FEATURES ... WHERE key = $1` over the Postgres-wire endpoint
(`fsql serve`) as a prepared statement, answered from the online store."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

import fsql


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prepared_lookup_over_the_wire_reads_the_online_store(store_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    fsql_bin = Path(sys.executable).with_name("fsql")
    if subprocess.run([str(fsql_bin), "serve", "--help"], capture_output=True).returncode:
        pytest.skip("fsql serve is not available")
    with fsql.connect(store_path) as s:
        s.create_feature_group(
            "tx",
            pa.table(
                {
                    "customer_id": [1, 2, 3],
                    "ts": [datetime(2024, 1, 1)] * 3,
                    "amount": [1.0, 2.0, 3.0],
                }
            ),
            primary_key="customer_id",
            event_time="ts",
            online=True,
        )
    # change the online row behind the store's back: only an online read sees it
    conn = sqlite3.connect(store_path / "online.sqlite")
    with conn:
        (v,) = conn.execute('SELECT v FROM "default__tx__v1" WHERE k = ?', ("[1]",)).fetchone()
        values = json.loads(v)
        values[1] = -999.0  # [ts, amount]
        conn.execute('UPDATE "default__tx__v1" SET v = ? WHERE k = ?', (json.dumps(values), "[1]"))
    conn.close()
    port = _free_port()
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
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"postgresql://fsql@127.0.0.1:{port}/default"
        client = None
        deadline = time.time() + 120
        while client is None and time.time() < deadline:
            try:
                client = psycopg.connect(url, autocommit=True, prepare_threshold=0)
            except psycopg.OperationalError:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    pytest.fail(f"fsql serve exited: {err[-2000:]}")
                time.sleep(0.25)
        assert client is not None, "fsql serve did not accept connections"
        with client:
            q = "SELECT FEATURES amount WHERE customer_id = %s"
            for _ in range(3):  # prepared once, executed again
                assert client.execute(q, (1,)).fetchall() == [(1, -999.0)]
            assert client.execute(q, (2,)).fetchall() == [(2, 2.0)]
            assert client.execute(q, (404,)).fetchall() == []
            rows = client.execute(
                "SELECT FEATURES amount WHERE customer_id IN (%s, %s)", (3, 1)
            ).fetchall()
            assert sorted(rows) == [(1, -999.0), (3, 3.0)]
            # not a key lookup: the offline store answers
            rows = client.execute("SELECT FEATURES amount ORDER BY customer_id").fetchall()
            assert rows == [(1, 1.0), (2, 2.0), (3, 3.0)]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
