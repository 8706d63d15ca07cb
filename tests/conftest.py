"""Shared fixtures.

Tests that need a local service call :func:`require_service`; it skips with
the reason when the service is down, except under ``FSQL_REQUIRE_SERVICES=1``
(CI), where a missing service fails the test.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import fsql

SERVICES = {
    "postgres": ("127.0.0.1", 5432),
    "mariadb": ("127.0.0.1", 3306),
    "redis": ("127.0.0.1", 6379),
}


def service_up(name: str) -> bool:
    host, port = SERVICES[name]
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str) -> None:
    if service_up(name):
        return
    host, port = SERVICES[name]
    message = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("FSQL_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (FSQL_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_path: Path) -> Iterator[fsql.Store]:
    """A fresh embedded store; chDB serves one folder per process, so every
    test closes its store."""
    s = fsql.connect(store_path)
    try:
        yield s
    finally:
        s.close()
