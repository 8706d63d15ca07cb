"""The catalog mirror PostgreSQL never outlives ``fsql serve``: a killed
server takes it along, and a mirror left running on the store's folder is
stopped by the next start."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from fsql.server.mirror import WATCHDOG_NAME, mirror_folder

from .conftest import Server, start_server
from .test_tls import tiny_store


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _gone_within(procs: list[psutil.Process], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in procs):
            return True
        time.sleep(0.05)
    return False


def _postmaster(store: Path) -> psutil.Process:
    pid = int((mirror_folder(store) / "postmaster.pid").read_text().split()[0])
    proc = psutil.Process(pid)
    assert proc.name() == "postgres"
    return proc


def _watchdog(server: Server) -> psutil.Process:
    found = [c for c in psutil.Process(server.proc.pid).children() if WATCHDOG_NAME in c.cmdline()]
    assert len(found) == 1, found
    return found[0]


def _query(server: Server) -> None:
    with psycopg.connect(server.dsn, autocommit=True, connect_timeout=10) as c:
        assert c.execute("SELECT count(*) FROM transactions").fetchone() == (2,)
        # a catalog query: answered by the mirror
        assert c.execute(
            "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'transactions'"
        ).fetchone() == (1,)


def _kill(server: Server) -> None:
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    tiny_store(path)
    return path


def test_a_killed_server_takes_its_mirror_along(store: Path) -> None:
    server = start_server(store)
    try:
        _query(server)  # a backend of the mirror is open for this session
        postmaster = _postmaster(store)
        backends = postmaster.children()
        assert backends
        watchdog = _watchdog(server)
        _kill(server)
        start = time.monotonic()
        assert _gone_within([postmaster, *backends], 5.0)
        print(f"mirror gone {time.monotonic() - start:.2f} s after SIGKILL")
        assert _gone_within([watchdog], 5.0)
    finally:
        server.stop()
    # the next server on the store starts its own mirror and works
    again = start_server(store)
    try:
        _query(again)
        assert _postmaster(store).pid != postmaster.pid
    finally:
        again.stop()


def test_the_next_start_stops_a_leftover_mirror(store: Path) -> None:
    server = start_server(store)
    try:
        _query(server)
        postmaster = _postmaster(store)
        # no watchdog (as with a server before this one): the mirror is orphaned
        _watchdog(server).kill()
        _kill(server)
        time.sleep(1.0)
        assert _alive(postmaster)
    finally:
        server.stop()
    again = start_server(store)
    try:
        assert _gone_within([postmaster], 1.0)  # stopped before the new one started
        assert "stopping a leftover catalog mirror PostgreSQL" in again.log.read_text()
        _query(again)
        current = _postmaster(store)
        assert current.pid != postmaster.pid
    finally:
        again.stop()
    # a clean stop after the crash stops the mirror too
    assert again.proc.returncode == 0
    assert _gone_within([current], 5.0)
