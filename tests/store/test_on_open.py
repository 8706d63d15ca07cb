"""``hooks.on_open``: announced once per open, after the offline store
recovered; a subscriber that fails makes the open fail and closes the store."""

from __future__ import annotations

import pyarrow as pa
import pytest

import fsql
from fsql.store import hooks


def test_on_open_runs_after_recovery_and_a_failing_subscriber_fails_the_open(store_path):
    with fsql.connect(store_path) as store:
        fg = store.create_feature_group("g", pa.table({"k": [1, 2]}), primary_key="k")
        # a commit a crash left pending
        pending = store.catalog.begin_commit(fg.record)
    seen: list[tuple[str, list[str]]] = []

    def record(store):
        states = [c.state for c in store.catalog.commits()]
        seen.append((str(store.path), states))

    hooks.on_open.subscribe(record)
    try:
        with fsql.connect(store_path) as store:
            assert seen == [(str(store.path), ["committed", "aborted"])]
            assert [c.id for c in store.catalog.commits(state="aborted")] == [pending.id]
    finally:
        hooks.on_open._subscribers.remove(record)

    def fail(store):
        raise RuntimeError("subscriber failed")

    hooks.on_open.subscribe(fail)
    try:
        with pytest.raises(RuntimeError, match="subscriber failed"):
            fsql.connect(store_path)
    finally:
        hooks.on_open._subscribers.remove(fail)
    # the failed open released the folder: it opens again
    with fsql.connect(store_path) as store:
        assert store.get_feature_group("g").read().num_rows == 2
