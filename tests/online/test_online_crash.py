"""A process killed (SIGKILL) after a commit of an online feature group is
durable offline but before its online write: the online status must not
say ``ok`` afterwards, and the online rows are repaired — when the store
reopens the group is marked stale, then rebuilt by its first lookup or its
next commit. A group whose state says ``ok`` but missed a commit (another
process's crash, found by no open of this one) is rebuilt by its next
commit, and its status reads ``stale`` meanwhile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest
from online_helpers import cleanup, online_url

import fsql
import fsql.online.api
from fsql.catalog import Catalog
from fsql.online import state as st
from fsql.store import hooks

CHILD = textwrap.dedent(
    """
    import sys, time
    import pyarrow as pa
    import fsql

    path, url = sys.argv[1], sys.argv[2]
    store = fsql.connect(path, online=url)
    fg = store.create_feature_group(
        "tx", pa.table({"k": list(range(1, 11)), "v": [1.0] * 10}), primary_key="k", online=True
    )
    assert store.get_feature_vector(["v"], {"k": 1}) == [1.0]
    service = store.online

    def killed_before_online_write(fg, commit):
        print("committed offline", commit.id, flush=True)   # the parent kills us here
        time.sleep(600)

    service.after_commit = killed_before_online_write
    fg.insert(pa.table({"k": [1, 2, 3, 4, 5, 11], "v": [2.0] * 6}))
    print("returned", flush=True)
    """
)


def crash_between_offline_and_online(tmp_path: Path, store_path: Path, url: str) -> int:
    """Run the child and SIGKILL it at the point; returns the lost commit id."""
    script = tmp_path / "online_child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(store_path), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 180
        commit_id = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline().strip()
            if line.startswith("committed offline"):
                commit_id = int(line.rsplit(" ", 1)[1])
                break
            if not line and proc.poll() is not None:
                break
        assert commit_id is not None, proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # what the crash left: the commit is durable offline, the catalog still
    # says the online rows are ok as of the commit before it
    catalog = Catalog(f"sqlite:///{store_path / 'catalog.sqlite'}")
    try:
        fg = catalog.feature_group("default", "tx")
        assert [c.state for c in catalog.commits(fg)] == ["committed", "committed"]
        left = st.get(catalog, fg.id)
        assert left is not None and left.status == st.OK
        assert left.last_commit_id == commit_id - 1
    finally:
        catalog.close()
    return commit_id


EXPECTED = {**{k: 2.0 for k in (1, 2, 3, 4, 5, 11)}, **{k: 1.0 for k in range(6, 11)}}


def online_values(store: fsql.Store) -> dict[int, float]:
    keys = sorted(EXPECTED)
    got = store.get_feature_vectors(["v"], [{"k": k} for k in keys], return_type="list")
    return {k: row[0] for k, row in zip(keys, got, strict=True)}


@pytest.fixture
def url(backend: str, prefix: str):
    try:
        yield online_url(backend, prefix)
    finally:
        cleanup(backend, prefix)


def test_reopen_marks_stale_and_the_first_lookup_repairs(tmp_path, store_path, url):
    lost = crash_between_offline_and_online(tmp_path, store_path, url)
    with fsql.connect(store_path, online=url) as store:
        fg = store.get_feature_group("tx")
        marked = st.get(store.catalog, fg.record.id)
        assert marked is not None and marked.status == st.STALE
        assert st.is_behind(marked) and f"commit {lost} is committed offline" in marked.error
        report = store.check_consistency("tx")
        assert report.summary()["status"] == "stale"
        assert not report.ok  # the online rows really are behind: keys 1-5 differ, 11 missing
        assert set(report.mismatches.column("problem").to_pylist()) == {"different", "missing"}
        # the first lookup rebuilds the group, then serves the committed values
        assert online_values(store) == EXPECTED
        repaired = store.online.state(fg.record)
        assert repaired is not None and repaired.status == st.OK
        assert repaired.last_commit_id == lost
        assert store.check_consistency("tx").ok


def test_reopen_then_the_next_commit_repairs(tmp_path, store_path, url):
    lost = crash_between_offline_and_online(tmp_path, store_path, url)
    with fsql.connect(store_path, online=url) as store:
        fg = store.get_feature_group("tx")
        commit = fg.insert(pa.table({"k": [12], "v": [3.0]}))
        assert commit.id > lost
        report = store.check_consistency("tx")
        assert report.ok, report.mismatches.to_pylist()
        assert report.summary()["status"] == "ok"
        assert online_values(store) == EXPECTED
        assert store.get_feature_vector(["v"], {"k": 12}) == [3.0]


def test_a_missed_commit_is_reported_stale_and_repaired_by_the_next(ostore):
    """The online rows miss a commit while the state says ok (as when
    another process sharing the online store was killed at that point):
    the status reads stale, and the next commit rebuilds the group instead
    of applying only its own rows."""
    fg = ostore.create_feature_group(
        "tx", pa.table({"k": [1, 2], "v": [1.0, 1.0]}), primary_key="k", online=True
    )
    hooks.after_commit._subscribers.remove(fsql.online.api._after_commit)
    try:
        missed = fg.insert(pa.table({"k": [1, 3], "v": [2.0, 2.0]}))
    finally:
        hooks.after_commit.subscribe(fsql.online.api._after_commit)
    recorded = st.get(ostore.catalog, fg.record.id)
    assert recorded is not None and recorded.status == st.OK  # what the catalog row says
    reported = ostore.online.state(fg.record)
    assert reported is not None and reported.status == st.STALE
    assert f"commit {missed.id} is committed offline" in (reported.error or "")
    assert ostore.check_consistency("tx").summary()["status"] == "stale"
    fg.insert(pa.table({"k": [4], "v": [4.0]}))
    assert ostore.check_consistency("tx").ok
    got = ostore.get_feature_vectors(["v"], [{"k": k} for k in (1, 2, 3, 4)], return_type="list")
    assert got == [[2.0], [1.0], [2.0], [4.0]]
    assert ostore.online.state(fg.record).status == st.OK  # type: ignore[union-attr]
