"""Choosing the online backend per store."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pyarrow as pa
import pytest

import fsql
from fsql.errors import FsqlError
from fsql.online import OnlineStoreUnavailable


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
    from fsql.store.lock import StoreLock

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from fsql.store.lock import StoreLock; "
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


# a port nothing listens on: connecting is refused at once
UNREACHABLE = "postgresql://postgres@127.0.0.1:5999/test?prefix=unreachable_"


def test_create_whose_first_commit_cannot_reach_the_online_store_keeps_nothing(
    store_path: Path,
) -> None:
    table = pa.table({"k": [1, 2], "v": [1.0, 2.0]})
    with fsql.connect(store_path, online=UNREACHABLE) as s:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(OnlineStoreUnavailable) as e:
                s.create_feature_group("g", table, primary_key="k", online=True)
        err = e.value
        assert err.sqlstate == "08006"
        assert err.message == (
            'feature group "g" version 1 was not created: its first commit could not be '
            "written to the online store, so the create was rolled back and nothing was "
            "kept, offline or online"
        )
        assert "stored offline" not in str(err) and "materialize" not in (err.hint or "")
        assert "5999" in (err.detail or "")  # the cause: the refused connection
        assert [str(w.message) for w in caught] == []  # no "online rows were not dropped"
        assert s.feature_groups() == []
        # the same through SQL
        with pytest.raises(OnlineStoreUnavailable) as e:
            s.sql(
                "CREATE FEATURE GROUP h PRIMARY KEY (k) ONLINE AS SELECT 1::BIGINT AS k, 2.5 AS v"
            )
        assert e.value.sqlstate == "08006" and "was not created" in e.value.message
        assert s.feature_groups() == []
    # nothing left behind: the name is free once the online store is reachable
    with fsql.connect(store_path, online="embedded") as s:
        fg = s.create_feature_group("g", table, primary_key="k", online=True)
        assert fg.version == 1
        assert s.get_feature_vector(["v"], {"k": 2}) == [2.0]


def test_first_commit_into_an_existing_group_is_kept_offline_and_says_so(
    store_path: Path,
) -> None:
    with fsql.connect(store_path, online=UNREACHABLE) as s:
        fg = s.create_feature_group("g", schema={"k": "BIGINT", "v": "DOUBLE PRECISION"},
                                    primary_key="k", online=True)  # fmt: skip
        with pytest.raises(OnlineStoreUnavailable) as e:
            fg.insert(pa.table({"k": [1], "v": [1.0]}))
        assert e.value.sqlstate == "08006" and "is stored offline" in e.value.message
        assert fg.read().column("v").to_pylist() == [1.0]  # the commit stays
        assert [g.name for g in s.feature_groups()] == ["g"]
