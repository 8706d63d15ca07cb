"""A running ``fsql serve`` in a subprocess, on a free port, over a fresh store."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import fsql
from fsql.server import auth

FSQL = Path(sys.executable).parent / "fsql"
USER, PASSWORD = "alice", "s3cret-pw"
BIG_ROWS = 200_000


TYPES_TABLE = pa.table(
    {
        "k": pa.array([1, 2], pa.int64()),
        "b": pa.array([True, None]),
        "i2": pa.array([-3, None], pa.int16()),
        "i4": pa.array([2_000_000_000, None], pa.int32()),
        "f4": pa.array([1.5, None], pa.float32()),
        "f8": pa.array([-2.25e-5, None], pa.float64()),
        "num": pa.array([decimal.Decimal("-12345.678"), None], pa.decimal128(12, 3)),
        "t": pa.array(['tab\there, "quoted" ünï', None]),
        "d": pa.array([dt.date(1999, 12, 31), None], pa.date32()),
        "ts": pa.array([dt.datetime(2024, 2, 29, 12, 30, 5, 123456), None], pa.timestamp("us")),
        "tstz": pa.array(
            [dt.datetime(2024, 2, 29, 12, 30, 5, 5, tzinfo=dt.UTC), None],
            pa.timestamp("us", tz="UTC"),
        ),
        # ClickHouse arrays are never NULL: the second row holds empty arrays
        "ai": pa.array([[1, None, 3], []], pa.list_(pa.int64())),
        "at": pa.array([["a b", "c,d", None, ""], []], pa.list_(pa.string())),
    }
)
BYTES_TABLE = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.int64()),
        "by": pa.array([b"\x00\x01\xff", None, b"a\tb\\"], pa.binary()),
    }
)
TYPES_ROW = (
    1, True, -3, 2_000_000_000, 1.5, -2.25e-5, decimal.Decimal("-12345.678"),
    'tab\there, "quoted" ünï', dt.date(1999, 12, 31),
    dt.datetime(2024, 2, 29, 12, 30, 5, 123456),
    dt.datetime(2024, 2, 29, 12, 30, 5, 5, tzinfo=dt.UTC),
    [1, None, 3], ["a b", "c,d", None, ""],
)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    path: Path
    port: int
    proc: subprocess.Popen[str]
    log: Path

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname=default user={USER} password={PASSWORD}"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{self.port}/default"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def make_store(path: Path) -> None:
    """transactions (4 rows, two versions of customer 1) and big (BIG_ROWS rows)."""
    store = fsql.connect(path)
    try:
        t = pa.table(
            {
                "customer_id": pa.array([1, 2, 3, 1], pa.int64()),
                "event_ts": pa.array(
                    [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 3),
                     dt.datetime(2024, 2, 1)],
                    pa.timestamp("us"),
                ),
                "amount": pa.array([10.5, 20.0, None, 30.25]),
                "name": ["a", "b", "c", "d"],
            }
        )  # fmt: skip
        store.create_feature_group(
            "transactions",
            t,
            primary_key="customer_id",
            event_time="event_ts",
            description="rolling transaction aggregates",
            features={"amount": "money spent"},
        )
        n = BIG_ROWS
        big = pa.table(
            {
                "id": pa.array(np.arange(n, dtype=np.int64)),
                "v": pa.array(np.arange(n, dtype=np.float64) / 4),
                "s": pa.array([f"name_{i}" for i in range(n)]),
            }
        )
        store.create_feature_group("big", big, primary_key="id")
        store.create_feature_group("types_fg", TYPES_TABLE, primary_key="k")
        store.create_feature_group("bytes_fg", BYTES_TABLE, primary_key="id")
        auth.set_password(store.catalog, USER, PASSWORD)
    finally:
        store.close()


def start_server(path: Path, *args: str, timeout: float = 120) -> Server:
    port = free_port()
    log = path.parent / f"server-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = log.open("w")
    proc = subprocess.Popen(
        [str(FSQL), "--store", str(path), "serve", "--port", str(port), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=str(path.parent),
    )
    server = Server(path, port, proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fsql serve exited:\n{log.read_text()}")
        if "fsql serving" in log.read_text():
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"fsql serve did not start:\n{log.read_text()}")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    path = tmp_path_factory.mktemp("wire") / "store"
    make_store(path)
    server = start_server(path)
    try:
        yield server
    finally:
        server.stop()
