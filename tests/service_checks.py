"""Local services the tests talk to, and how a test asks for one.

:func:`require_service` skips with the reason when the service is down,
except under ``FSQL_REQUIRE_SERVICES=1`` (CI), where a missing service fails
the test. A module of its own (not conftest.py) so that every test folder
imports the same one.
"""

from __future__ import annotations

import os
import socket

import pytest

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
