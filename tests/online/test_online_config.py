"""Choosing the online backend per store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import fsql
from fsql.errors import FsqlError


def test_online_backend_is_a_remembered_store_setting(store_path: Path) -> None:
    with fsql.connect(store_path) as s:
        assert s.online.backend.kind == "embedded"
    with fsql.connect(store_path, online="redis://127.0.0.1:6379/0?prefix=cfgtest:") as s:
        assert s.online.url.startswith("redis://")
    assert json.loads((store_path / "fsql.json").read_text())["online"].startswith("redis://")
    with fsql.connect(store_path) as s:  # remembered
        assert s.online.url.startswith("redis://")
    with fsql.connect(store_path, online="embedded") as s:
        assert s.online.backend.kind == "embedded"


def test_unknown_online_backend_is_a_clear_error(store_path: Path) -> None:
    with fsql.connect(store_path, online="cassandra://x") as s, pytest.raises(FsqlError) as e:
        s.online.backend  # noqa: B018
    assert e.value.sqlstate == "22023" and "postgresql://" in (e.value.hint or "")
