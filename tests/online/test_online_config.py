"""Choosing the online backend per store."""

from __future__ import annotations

import json
import subprocess
import sys
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


def test_second_connect_in_the_same_process_says_this_process_has_it(store_path: Path) -> None:
    with fsql.connect(store_path) as s:
        with pytest.raises(FsqlError) as e:
            fsql.connect(store_path)
        err = e.value
        assert err.sqlstate == "55006"
        assert err.message == f"the store at {s.path} is already open in this process"
        assert "close" in (err.hint or "") and "serve" not in (err.hint or "")
        assert s.sql("SELECT 1 AS x").column("x").to_pylist() == [1]  # the open one still works
    with fsql.connect(store_path) as s2:  # once closed, connecting again works
        assert s2.sql("SELECT 2 AS x").column("x").to_pylist() == [2]


def test_store_held_by_another_process_names_that_process(tmp_path: Path) -> None:
    from fsql.lock import StoreLock

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from fsql.lock import StoreLock; "
            "StoreLock(pathlib.Path(sys.argv[1])).acquire(); print('held', flush=True); "
            "sys.stdin.read()",
            str(tmp_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(FsqlError) as e:
            StoreLock(tmp_path).acquire()
        assert e.value.message == f"the store at {tmp_path} is in use by process {holder.pid}"
        assert "serve" in (e.value.hint or "")
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
