"""Racing commits of the same (primary key, event time) into one feature
group: reads show exactly one row per (key, event time), the latest
commit's, and the group's ``has_upserts`` flag is set.

Commits of one group are serialized in a process (``OfflineStore.group_lock``);
commits from two processes sharing a catalog and an engine are simulated
with two ``OfflineStore`` objects (each with its own locks) over one engine
and two catalog connections, which exercises the re-check after ATTACH."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

import fsql
from fsql.catalog import Catalog, Commit
from fsql.store.offline import OfflineStore

T0 = dt.datetime(2024, 1, 1)
SHARED_KEYS = [1, 2, 3]


def rows(writer: int) -> pa.Table:
    """Every writer writes keys 1-3 at the same two event times (overlap),
    plus one key of its own."""
    keys = [*SHARED_KEYS, *SHARED_KEYS, 100 + writer]
    times = [T0] * 3 + [T0 + dt.timedelta(days=1)] * 3 + [T0]
    return pa.table(
        {
            "k": pa.array(keys, pa.int64()),
            "ts": pa.array(times, pa.timestamp("us")),
            "v": pa.array([float(writer)] * len(keys)),
        }
    )


def race(n: int, commit: Callable[[int], Commit]) -> dict[int, Commit]:
    """``n`` threads released at once, each making one commit."""
    barrier = threading.Barrier(n)
    done: dict[int, Commit] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            done[i] = commit(i)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(done) == n
    return done


def check_round(store: fsql.Store, name: str, done: dict[int, Commit]) -> None:
    latest_writer = max(done, key=lambda i: done[i].id)
    got = store.sql(f"SELECT k, ts, v FROM {name} ORDER BY k, ts").to_pylist()
    shared = [r for r in got if r["k"] in SHARED_KEYS]
    # exactly one row per (key, event time) ...
    assert [(r["k"], r["ts"]) for r in shared] == [
        (k, t) for k in SHARED_KEYS for t in (T0, T0 + dt.timedelta(days=1))
    ]
    # ... and it is the latest commit's
    assert {r["v"] for r in shared} == {float(latest_writer)}
    # every writer's own key is there once
    assert sorted(r["k"] for r in got if r["k"] not in SHARED_KEYS) == sorted(100 + i for i in done)
    fg = store.get_feature_group(name)
    assert fg.record.has_upserts
    assert fg.read().num_rows == len(SHARED_KEYS) * 2 + len(done)
    # the count path (no ORDER BY, no key filter) agrees
    n = store.sql(f"SELECT count(*) AS n FROM {name}").column("n")[0].as_py()
    assert n == len(SHARED_KEYS) * 2 + len(done)


SCHEMA = {"k": "bigint", "ts": "timestamp", "v": "double precision"}


@pytest.mark.parametrize("writers", [2, 4])
def test_racing_commits_in_one_process_keep_one_row_per_key(store, writers):
    for r in range(12):
        name = f"race_{writers}_{r}"
        fg = store.create_feature_group(name, schema=SCHEMA, primary_key="k", event_time="ts")
        done = race(writers, lambda i, fg=fg: fg.insert(rows(i)))
        check_round(store, name, done)


def test_racing_sql_inserts_keep_one_row_per_key(store):
    """The same through ``store.sql('INSERT ...')`` (the path the
    Postgres-wire server takes for each client)."""
    for r in range(8):
        name = f"sql_race_{r}"
        store.sql(f"CREATE FEATURE GROUP {name} (k bigint, ts timestamp, v double precision) "
                  "PRIMARY KEY (k) EVENT TIME ts")  # fmt: skip

        def insert(i: int, name: str = name) -> Commit:
            values = ", ".join(
                f"({k}, TIMESTAMP '{t:%Y-%m-%d %H:%M:%S}', {float(i)})"
                for k, t, _ in zip(*rows(i).to_pydict().values(), strict=True)
            )
            store.sql(f"INSERT INTO {name} VALUES {values}")
            fg = store.get_feature_group(name)
            # this thread's commit: the one whose own key is i's
            found = store.engine.query(
                f"SELECT _commit_id FROM fsql_default.{name}_v1 WHERE k = {100 + i}"
            )
            cid = found.column(0)[0].as_py()
            return next(c for c in fg.commits() if c.id == cid)

        done = race(3, insert)
        check_round(store, name, done)


def test_commits_that_do_not_overlap_leave_has_upserts_false(store):
    fg = store.create_feature_group("apart", schema=SCHEMA, primary_key="k", event_time="ts")

    def own_rows(i: int) -> Commit:
        t = pa.table(
            {
                "k": pa.array([1000 * (i + 1) + j for j in range(5)], pa.int64()),
                "ts": pa.array([T0] * 5, pa.timestamp("us")),
                "v": pa.array([float(i)] * 5),
            }
        )
        return fg.insert(t)

    race(4, own_rows)
    assert not store.get_feature_group("apart").record.has_upserts
    assert store.get_feature_group("apart").read().num_rows == 20


def test_racing_commits_from_two_stores_sharing_catalog_and_engine(store, store_path):
    """Two writers that do not share the in-process lock (as two processes
    over one ClickHouse server and one catalog would): the check after
    ATTACH sees the other's rows, so the flag is set and reads de-duplicate."""
    other_catalog = Catalog(store.catalog.url)
    other = OfflineStore(store.engine, other_catalog)
    writers: list[Any] = [store.offline, other]
    try:
        for r in range(12):
            name = f"shared_{r}"
            fg = store.create_feature_group(name, schema=SCHEMA, primary_key="k", event_time="ts")
            record = fg.record
            done = race(2, lambda i, record=record: writers[i].insert(record, rows(i)))
            check_round(store, name, done)
            states = [c.state for c in store.catalog.commits(record)]
            assert states == ["committed", "committed"]
    finally:
        other_catalog.close()


def test_sequential_upsert_still_sets_the_flag_and_the_later_value_wins(store):
    fg = store.create_feature_group("seq", rows(0), primary_key="k", event_time="ts")
    assert not fg.record.has_upserts
    fg.insert(rows(1))
    assert fg.record.has_upserts
    got = fg.read().to_pylist()
    assert {r["v"] for r in got if r["k"] in SHARED_KEYS} == {1.0}
    assert len(got) == 8
