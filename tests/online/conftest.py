"""Online-store fixtures: every test runs once per backend, against the real
local servers, with a unique table/key prefix that is removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from online_helpers import BACKENDS, cleanup, online_url, require_service

import fsql


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param != "embedded":
        require_service(request.param)
    return str(request.param)


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}_"


@pytest.fixture
def ostore(backend: str, prefix: str, store_path: Path) -> Iterator[fsql.Store]:
    """A fresh store whose online store is ``backend``."""
    s = fsql.connect(store_path, online=online_url(backend, prefix))
    try:
        yield s
    finally:
        s.close()
        cleanup(backend, prefix)
