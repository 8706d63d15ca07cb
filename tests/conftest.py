"""Shared fixtures.

Tests that need a local service call :func:`require_service`; it skips with
the reason when the service is down, except under ``FSQL_REQUIRE_SERVICES=1``
(CI), where a missing service fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from service_checks import SERVICES, require_service, service_up  # noqa: F401

import fsql


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
