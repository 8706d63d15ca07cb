"""A store's lock file (``fsql.store.lock``) deleted while the store is open:
a second open, in this process or another, is a clean 55006 that says the
lock file was deleted, never an engine traceback; after the first store
closes, the folder opens again normally."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

import fsql
from fsql.errors import StoreInUse
from fsql.store.lock import LOCK_FILE

FSQL = Path(sys.executable).parent / "fsql"

OPEN_IN_CHILD = textwrap.dedent(
    """
    import json, sys
    import fsql
    from fsql.errors import FsqlError
    try:
        store = fsql.connect(sys.argv[1])
    except FsqlError as e:
        print(json.dumps({"type": type(e).__name__, "sqlstate": e.sqlstate,
                          "message": e.message, "hint": e.hint}))
    else:
        rows = store.sql("SELECT count(*) AS n FROM g").column("n")[0].as_py()
        store.close()
        print(json.dumps({"opened": True, "rows": rows}))
    """
)


def open_in_child(tmp_path: Path, store_path: Path) -> dict:
    script = tmp_path / "open_child.py"
    script.write_text(OPEN_IN_CHILD)
    done = subprocess.run(
        [sys.executable, str(script), str(store_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def opened(store_path: Path):
    store = fsql.connect(store_path)
    store.create_feature_group("g", pa.table({"k": [1, 2, 3]}), primary_key="k")
    try:
        yield store
    finally:
        store.close()


def test_second_open_in_this_process_after_the_lock_file_was_deleted(opened, store_path):
    (store_path / LOCK_FILE).unlink()
    with pytest.raises(StoreInUse) as info:
        fsql.connect(store_path)
    assert info.value.sqlstate == "55006"
    assert "already open in this process" in info.value.message
    assert f"lock file {LOCK_FILE} was deleted" in info.value.message
    # the open store is unharmed
    assert opened.sql("SELECT count(*) AS n FROM g").column("n").to_pylist() == [3]
    opened.close()
    with fsql.connect(store_path) as again:  # close, then reopen: a new lock file
        assert (store_path / LOCK_FILE).exists()
        assert again.get_feature_group("g").read().num_rows == 3


def test_other_process_is_refused_with_55006_naming_the_holder(opened, store_path, tmp_path):
    (store_path / LOCK_FILE).unlink()
    got = open_in_child(tmp_path, store_path)
    assert got["type"] == "StoreInUse"
    assert got["sqlstate"] == "55006"
    assert f"in use by process {os.getpid()}" in got["message"]
    assert f"lock file {LOCK_FILE} was deleted" in got["message"]
    assert "Stop process" in got["hint"]
    # the CLI reports it as a short error, exit status 1, no traceback
    cli = subprocess.run(
        [str(FSQL), "--store", str(store_path), "sql", "SELECT 1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert cli.returncode == 1
    assert "55006" in cli.stderr and "was deleted" in cli.stderr
    assert "Traceback" not in cli.stderr
    # the holder works on, then closes; the other process then opens it
    assert opened.sql("SELECT count(*) AS n FROM g").column("n").to_pylist() == [3]
    opened.close()
    assert open_in_child(tmp_path, store_path) == {"opened": True, "rows": 3}


def test_lock_file_present_still_names_the_holder(opened, store_path, tmp_path):
    got = open_in_child(tmp_path, store_path)
    assert got["sqlstate"] == "55006"
    assert f"in use by process {os.getpid()}" in got["message"]
    assert "deleted" not in got["message"]


ENGINE_CHILD = textwrap.dedent(
    """
    import json, sys
    from fsql.connectors.chdb_engine import ChdbEngine
    from fsql.errors import FsqlError
    try:
        ChdbEngine(sys.argv[1])
    except FsqlError as e:
        print(json.dumps({"type": type(e).__name__, "sqlstate": e.sqlstate,
                          "message": e.message}))
    else:
        print(json.dumps({"opened": True}))
    """
)


def test_engine_open_of_a_folder_another_process_holds_is_55006(opened, store_path, tmp_path):
    """Past the store lock (the engine opened directly), chDB's own refusal
    is 55006 too, not a RuntimeError."""
    script = tmp_path / "engine_child.py"
    script.write_text(ENGINE_CHILD)
    done = subprocess.run(
        [sys.executable, str(script), str(store_path / "offline")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["type"] == "StoreInUse", got
    assert got["sqlstate"] == "55006"
    assert f"is in use by process {os.getpid()}" in got["message"]
