"""Point-in-time correctness against a brute-force oracle.

The oracle below is written from the definition, independently of the
planner: for each spine row and each feature group, among the rows with an
equal key, an event time <= the spine time and a commit visible at the system
time, take the greatest event time; among rows with that event time, the
latest commit. No match gives NULL.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fsql

BASE = dt.datetime(2024, 1, 1)
_names = itertools.count()


def day(n: int) -> dt.datetime:
    return BASE + dt.timedelta(days=n)


def _key_and_day(row: tuple) -> tuple:
    return row[:-1]


# A commit: rows of (key..., event day, value) with unique (key, day).
def commits_strategy(key_width: int) -> st.SearchStrategy:
    row = st.tuples(
        *[st.integers(0, 3) for _ in range(key_width)], st.integers(0, 12), st.integers(-50, 50)
    )
    commit = st.lists(row, min_size=1, max_size=12, unique_by=_key_and_day)
    return st.lists(commit, min_size=1, max_size=4)


spine_strategy = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(-2, 15)), min_size=1, max_size=20
)


def oracle_value(commits, key, t, visible_commits):
    best = None  # (day, commit index, value)
    for ci, commit in enumerate(commits):
        if ci >= visible_commits:
            continue
        for *k, d, v in commit:
            if tuple(k) == key and d <= t and (best is None or (d, ci) > best[:2]):
                best = (d, ci, v)
    return None if best is None else best[2]


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    s = fsql.connect(tmp_path_factory.mktemp("pit") / "store")
    yield s
    s.close()


def _make_fg(store, keys, commits, value="v"):
    name = f"fg{next(_names)}"
    schema = {k: "bigint" for k in keys} | {"ts": "timestamp", value: "bigint"}
    handle = store.create_feature_group(name, schema=schema, primary_key=keys, event_time="ts")
    times = []
    for commit in commits:
        cols = list(zip(*commit, strict=True))
        data = {k: list(cols[i]) for i, k in enumerate(keys)}
        data["ts"] = [day(d) for d in cols[len(keys)]]
        data[value] = list(cols[len(keys) + 1])
        times.append(handle.insert(pa.table(data)).commit_time_us)
    return name, times


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    a_commits=commits_strategy(1),
    b_commits=commits_strategy(2),
    spine=spine_strategy,
    system_cut=st.integers(0, 4),
)
def test_point_in_time_join_matches_oracle(shared_store, a_commits, b_commits, spine, system_cut):
    store = shared_store
    a_name, a_times = _make_fg(store, ["k"], a_commits, "a")
    b_name, b_times = _make_fg(store, ["k", "m"], b_commits, "b")
    spine_table = pa.table(
        {
            "k": [r[0] for r in spine],
            "m": [r[1] for r in spine],
            "t": [day(r[2]) for r in spine],
            "row": list(range(len(spine))),
        }
    )
    # system time: after `system_cut` commits of A (and B's commits made before then)
    all_times = sorted(a_times + b_times)
    cut = all_times[min(system_cut, len(all_times)) - 1] if system_cut else None
    result = store.get_features(
        [f"{a_name}.a", f"{b_name}.b"], spine=spine_table, as_of="t", system_time=cut
    )
    visible_a = len(a_commits) if cut is None else sum(t <= cut for t in a_times)
    visible_b = len(b_commits) if cut is None else sum(t <= cut for t in b_times)
    assert result.column("row").to_pylist() == list(range(len(spine)))  # one row each, in order
    a_values = result.column("a").to_pylist()
    b_values = result.column("b").to_pylist()
    for i, (k, m, t) in enumerate(spine):
        assert a_values[i] == oracle_value(a_commits, (k,), t, visible_a), (i, k, t)
        assert b_values[i] == oracle_value(b_commits, (k, m), t, visible_b), (i, k, m, t)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    a_commits=commits_strategy(1),
    as_of_day=st.one_of(st.none(), st.integers(-1, 13)),
    key_filter=st.one_of(
        st.none(),
        st.lists(st.integers(0, 5), min_size=1, max_size=3),  # k IN (...)
        st.tuples(st.integers(0, 4), st.integers(0, 4)),  # k >= lo AND k <= hi
    ),
)
def test_latest_values_as_of_match_oracle(shared_store, a_commits, as_of_day, key_filter):
    """Without a spine: one row per key that has a row with event time <= AS
    OF (or any row, without AS OF), holding the latest such value. Keys whose
    first row comes later did not exist yet and are absent. A key filter
    (which the planner also applies before picking the latest row) keeps
    just those keys."""
    store = shared_store
    name, _ = _make_fg(store, ["k"], a_commits, "a")
    text = f"SELECT FEATURES {name}.a"
    if as_of_day is not None:
        text += f" AS OF TIMESTAMP '{day(as_of_day).isoformat(sep=' ')}'"
    if isinstance(key_filter, list):
        text += f" WHERE k IN ({', '.join(map(str, key_filter))})"
    elif key_filter is not None:
        text += f" WHERE k >= {key_filter[0]} AND ({name}.k <= {key_filter[1]})"
    result = store.sql(text)
    got = dict(zip(result.column("k").to_pylist(), result.column("a").to_pylist(), strict=True))
    keys = {r[0] for c in a_commits for r in c}
    if isinstance(key_filter, list):
        keys &= set(key_filter)
    elif key_filter is not None:
        keys = {k for k in keys if key_filter[0] <= k <= key_filter[1]}
    t = 10**9 if as_of_day is None else as_of_day
    expected = {k: oracle_value(a_commits, (k,), t, len(a_commits)) for k in keys}
    assert got == {k: v for k, v in expected.items() if v is not None}  # values are never NULL


def test_backfill_and_correction_are_invisible_before_their_commit(shared_store):
    """Event time and system time are independent: a backfill (old event
    times, committed later) and a correction (same key and event time,
    committed later) are invisible FOR SYSTEM_TIME AS OF an earlier time."""
    store = shared_store
    store.create_feature_group(
        "bf_labels",
        pa.table({"k": [1, 2], "ts": [day(6), day(6)]}),
        primary_key="k",
        event_time="ts",
    )
    fg = store.create_feature_group(
        "backfilled",
        schema={"k": "bigint", "ts": "timestamp", "x": "double precision"},
        primary_key="k",
        event_time="ts",
    )
    first = fg.insert(pa.table({"k": [1, 2], "ts": [day(5), day(5)], "x": [1.0, 2.0]}))
    fg.insert(pa.table({"k": [1], "ts": [day(1)], "x": [0.5]}))  # backfill
    fg.insert(pa.table({"k": [2], "ts": [day(5)], "x": [20.0]}))  # correction
    spine = pa.table({"k": [1, 1, 2], "t": [day(2), day(6), day(6)]})
    now = store.get_features(["x"], spine=spine, as_of="t")
    assert now.column("x").to_pylist() == [0.5, 1.0, 20.0]
    then = store.get_features(["x"], spine=spine, as_of="t", system_time=first.commit_time_us)
    assert then.column("x").to_pylist() == [None, 1.0, 2.0]
    stamp = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=first.commit_time_us)
    via_sql = store.sql(
        "SELECT FEATURES x FROM bf_labels AS OF bf_labels.ts FOR SYSTEM_TIME AS OF "
        f"TIMESTAMP '{stamp.isoformat(sep=' ')}'"
    )
    assert via_sql.column("x").to_pylist() == [1.0, 2.0]


def test_system_time_pins_a_feature_group_spine(shared_store):
    """Label rows committed after the system time are not spine rows."""
    store = shared_store
    labels = store.create_feature_group(
        "pinned_labels", pa.table({"k": [1], "ts": [day(3)]}), primary_key="k", event_time="ts"
    )
    store.create_feature_group(
        "pinned_feats",
        pa.table({"k": [1, 2], "ts": [day(1), day(1)], "y": [1.0, 2.0]}),
        primary_key="k",
        event_time="ts",
    )
    cut = labels.commits()[-1].commit_time_us
    labels.insert(pa.table({"k": [2], "ts": [day(4)]}))
    now = store.sql("SELECT FEATURES y FROM pinned_labels AS OF pinned_labels.ts")
    assert now.column("k").to_pylist() == [1, 2]
    stamp = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=cut)
    then = store.sql(
        "SELECT FEATURES y FROM pinned_labels AS OF pinned_labels.ts "
        f"FOR SYSTEM_TIME AS OF TIMESTAMP '{stamp.isoformat(sep=' ')}'"
    )
    assert then.column("k").to_pylist() == [1]
    # the feature group committed after the labels is invisible at that time too
    assert then.column("y").to_pylist() == [None]
