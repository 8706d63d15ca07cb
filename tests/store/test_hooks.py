"""The store announces commits, drops and its closing through hooks; the
layers above subscribe without the store importing them."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

import fsql
from fsql.store import hooks
from fsql.store.hooks import Hook


def test_hook_calls_subscribers_in_order_once_each() -> None:
    seen: list[str] = []
    hook = Hook("h")
    first = hook.subscribe(lambda x: seen.append(f"a{x}"))
    hook.subscribe(lambda x: seen.append(f"b{x}"))
    hook.subscribe(first)  # subscribing twice keeps one subscription
    hook(1)
    assert seen == ["a1", "b1"]


def test_hook_first_answers_with_the_first_non_none() -> None:
    hook = Hook("ask")
    hook.subscribe(lambda x: None)
    hook.subscribe(lambda x: x * 2)
    hook.subscribe(lambda x: x * 3)
    assert hook.first(5) == 10
    assert Hook("empty").first(5) is None


@pytest.fixture
def recorded():
    events: list[tuple] = []

    def on_commit(store, fg, commit):
        events.append(("commit", fg.name, commit.row_count, fg.has_upserts))

    def on_drop(store, fg):
        events.append(("drop", fg.name, fg.version))

    def on_close(store):
        events.append(("close",))

    hooks.after_commit.subscribe(on_commit)
    hooks.after_drop.subscribe(on_drop)
    hooks.on_close.subscribe(on_close)
    try:
        yield events
    finally:
        for hook, fn in (
            (hooks.after_commit, on_commit),
            (hooks.after_drop, on_drop),
            (hooks.on_close, on_close),
        ):
            hook._subscribers.remove(fn)


def _rows(amount: float) -> pa.Table:
    return pa.table(
        {"k": [1], "ts": [dt.datetime(2024, 1, 1)], "amount": [amount]},
    )


def test_store_announces_commits_drops_and_close(store_path, recorded) -> None:
    store = fsql.connect(store_path)
    try:
        fg = store.create_feature_group("tx", _rows(1.0), primary_key="k", event_time="ts")
        store.sql("INSERT INTO tx VALUES (1, TIMESTAMP '2024-01-01', 2.0)")  # an upsert
        # the announced record is the catalog's after the commit (has_upserts set)
        assert recorded == [("commit", "tx", 1, False), ("commit", "tx", 1, True)]
        fg.drop()
        assert recorded[-1] == ("drop", "tx", 1)
    finally:
        store.close()
    assert recorded[-1] == ("close",)


def test_a_failed_commit_announces_nothing(store, recorded) -> None:
    store.create_feature_group("tx", _rows(1.0), primary_key="k", event_time="ts")
    duplicate = pa.concat_tables([_rows(1.0), _rows(2.0)])
    with pytest.raises(fsql.FsqlError) as e:
        store.get_feature_group("tx").insert(duplicate)
    assert e.value.sqlstate == "23505"
    assert [ev[0] for ev in recorded] == ["commit"]
