"""A training-dataset build killed (SIGKILL) before its temporary folder is
renamed into place leaves ``.v<N>.tmp-*``: the store's recovery (when it
opens) removes it, in the default location and in a local ``location``
outside the store, but never the folder of a build that is still running,
in this process or another."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

import fsql
from fsql.training import dataset, recovery

CHILD = textwrap.dedent(
    """
    import sys, time
    import pyarrow as pa
    import fsql
    from fsql.training import dataset

    path, location = sys.argv[1], sys.argv[2] or None
    store = fsql.connect(path)
    store.create_feature_group("g", pa.table({"k": list(range(100)), "v": [1.5] * 100}),
                               primary_key="k")
    write = dataset.write_version

    def write_then_wait(loc, folder, encoded, manifest):
        write(loc, folder, encoded, manifest)
        print("written", folder, flush=True)   # files in the temporary folder, not renamed
        time.sleep(600)

    dataset.write_version = write_then_wait
    print("ready", flush=True)
    store.create_training_dataset("td", "SELECT * FROM g", location=location)
    print("built", flush=True)
    """
)


def start_build(tmp_path: Path, store_path: Path, location: Path | None) -> tuple:
    """A child process that builds a training dataset and stops after the
    files are written; returns (process, its temporary folder)."""
    script = tmp_path / "build_child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store_path), str(location or "")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stdout.readline().strip()
        if line.startswith("written "):
            return proc, Path(line.split(" ", 1)[1])
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(proc.stderr.read() if proc.stderr else "no output")


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def claims(store_path: Path) -> list[Path]:
    return sorted((store_path / recovery.DEFAULT_FOLDER / recovery.CLAIMS).glob("*.claim"))


@pytest.mark.parametrize("where", ["default", "elsewhere"])
def test_sigkilled_build_leaves_nothing_after_the_store_reopens(tmp_path, store_path, where):
    location = tmp_path / "elsewhere" if where == "elsewhere" else None
    base = location or store_path / recovery.DEFAULT_FOLDER
    proc, work = start_build(tmp_path, store_path, location)
    try:
        assert work.parent == base / "td"
        assert recovery.TEMP_FOLDER.match(work.name)
        assert any(work.rglob("part-00000.*"))  # the files were written
        assert len(claims(store_path)) == 1
    finally:
        kill(proc)
    assert work.is_dir()  # what the crash left
    with fsql.connect(store_path) as store:
        assert not work.exists()
        assert not (base / "td").exists()  # its dataset folder held nothing else
        assert claims(store_path) == []
        # the version was never registered: building it again gives v1
        td = store.create_training_dataset("td", "SELECT * FROM g", location=location)
        assert td.version == 1
        assert td.read().num_rows == 100
        assert sorted(p.name for p in (base / "td").iterdir()) == ["v1"]


def test_temp_folders_without_a_claim_in_the_default_location_are_removed(store_path):
    fsql.connect(store_path).close()
    old = store_path / recovery.DEFAULT_FOLDER / "churn" / ".v3.tmp-0123456789ab"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text("{}")
    kept = store_path / recovery.DEFAULT_FOLDER / "churn" / "v2"
    kept.mkdir()
    (kept / "manifest.json").write_text("{}")
    with fsql.connect(store_path):
        assert not old.exists()
        assert kept.is_dir() and (kept / "manifest.json").exists()  # not a temporary folder


def test_a_running_build_in_this_process_keeps_its_folder(store, monkeypatch):
    store.create_feature_group("g", pa.table({"k": [1, 2, 3], "v": [0.5] * 3}), primary_key="k")
    written, release = threading.Event(), threading.Event()
    seen: dict[str, object] = {}
    write = dataset.write_version

    def write_then_wait(loc, folder, encoded, manifest):
        write(loc, folder, encoded, manifest)
        seen["folder"] = Path(folder)
        written.set()
        assert release.wait(120)

    monkeypatch.setattr(dataset, "write_version", write_then_wait)
    errors: list[BaseException] = []

    def build() -> None:
        try:
            seen["td"] = store.create_training_dataset("td", "SELECT * FROM g")
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=build)
    thread.start()
    try:
        assert written.wait(120)
        folder = seen["folder"]
        assert isinstance(folder, Path) and folder.is_dir()
        # recovery while the build runs: its claim is locked, its folder stays
        assert recovery.recover(store.path) == []
        assert folder.is_dir()
        assert len(claims(store.path)) == 1
    finally:
        release.set()
        thread.join(120)
    assert not errors, errors
    assert seen["td"].read().num_rows == 3  # type: ignore[attr-defined]
    assert not folder.exists()  # renamed into place
    assert claims(store.path) == []


def test_a_running_build_in_another_process_keeps_its_folder(tmp_path, store_path):
    """Two processes sharing a store folder (a server deployment without the
    embedded lock): recovery in one leaves the other's running build alone,
    and removes its folder once it was killed."""
    location = tmp_path / "elsewhere"
    proc, work = start_build(tmp_path, store_path, location)
    try:
        assert recovery.recover(store_path) == []
        assert work.is_dir()
    finally:
        kill(proc)
    assert recovery.recover(store_path) == [str(work)]
    assert not work.exists()
    assert claims(store_path) == []
