"""Results as streams of record batches (``Store.sql_stream``, built on
``fsql.plan.plain.stream_plain`` and ``fsql.plan.features.stream_plan``):
the same checks, confinement, engine settings, types and values as
``Store.sql``, read from the engine a batch at a time; the engine session a
stream holds is given back when it ends, fails or is dropped."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest
from hostile_corpus import REFUSED, Canaries, corpus

import fsql
from fsql.connectors.engine import CancelScope, QueryCanceled, cancellable

ROWS = 200_000


@pytest.fixture
def g(store: fsql.Store) -> fsql.Store:
    """``g``: bytea, json and text features; ``tx``: a group with event times."""
    ids = np.arange(ROWS, dtype=np.int64)
    store.create_feature_group(
        "g",
        pa.table(
            {
                "id": pa.array(ids),
                "by": pa.array([int(i).to_bytes(4, "big") for i in ids], pa.binary()),
                "doc": [json.dumps({"a": int(i)}) for i in ids],
                "t": [f"x{i}" for i in ids],
            }
        ),
        primary_key="id",
        schema={"id": "bigint", "by": "bytea", "doc": "json", "t": "text"},
    )
    store.create_feature_group(
        "tx",
        pa.table(
            {
                "id": pa.array([1, 2, 1], pa.int64()),
                "ts": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2), dt.datetime(2024, 3, 1)],
                "amount": [1.5, 2.5, 3.5],
            }
        ),
        primary_key="id",
        event_time="ts",
    )
    return store


def _wait_for(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def _busy(store: fsql.Store) -> int:
    """Engine sessions taken from the embedded engine's pool."""
    return len(store.engine._busy)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "query, streams",
    [
        ("SELECT id, by, doc FROM g", True),  # bytea and json restored per batch
        ("SELECT FEATURES by, doc", True),
        ("SELECT id, t FROM g", True),  # text checked for UTF-8 per batch
        # text beside a bytea feature: bytea or text is decided by every value
        ("SELECT id, by, t FROM g", False),
    ],
)
def test_streamed_types_and_values_equal_the_whole_result(
    g: fsql.Store, query: str, streams: bool
) -> None:
    whole = g.sql(query)
    reader = g.sql_stream(query, batch_rows=1000)
    batches = list(reader)
    streamed = pa.Table.from_batches(batches, schema=reader.schema)
    assert streamed.schema.equals(whole.schema, check_metadata=True)
    assert streamed.sort_by("id").equals(whole.sort_by("id"))
    assert streamed.num_rows == ROWS
    if streams:
        assert len(batches) > 1  # read from the engine in pieces
    assert whole.schema.field("id").type == pa.int64()
    if "by" in whole.column_names:
        assert whole.schema.field("by").type == pa.binary()
    if "doc" in whole.column_names:
        assert whole.schema.field("doc").metadata == {b"fsql.type": b"json"}
    assert _wait_for(lambda: _busy(g) == 0)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id, by, doc FROM g WHERE id < 0",
        "SELECT number AS n, number::text AS t FROM numbers(0)",
        "SELECT FEATURES amount WHERE amount > 100",
    ],
)
def test_an_empty_result_keeps_its_columns(g: fsql.Store, query: str) -> None:
    # the engine's streaming API ends an empty result without a block
    whole = g.sql(query)
    streamed = g.sql_stream(query).read_all()
    assert whole.num_rows == streamed.num_rows == 0
    assert whole.num_columns >= 2
    assert streamed.schema.equals(whole.schema, check_metadata=True)


def test_a_spine_and_an_online_lookup_are_read_whole(g: fsql.Store) -> None:
    spine = "(SELECT * FROM (VALUES (2, TIMESTAMP '2024-06-01'), (1, TIMESTAMP '2024-02-01'))"
    query = f"SELECT FEATURES amount FROM {spine} AS s (id, ts)) AS s AS OF s.ts"
    streamed = g.sql_stream(query).read_all()
    assert streamed.equals(g.sql(query))  # in the spine's order, as sql() gives it
    assert sorted(streamed.select(["id", "amount"]).to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "amount": 1.5},
        {"id": 2, "amount": 2.5},
    ]
    lookup = "SELECT FEATURES amount WHERE id = 1"
    assert g.sql_stream(lookup).read_all().to_pylist() == [{"id": 1, "amount": 3.5}]


def test_the_hostile_corpus_is_refused_by_streams_too(g: fsql.Store, tmp_path, store_path) -> None:
    canaries = Canaries.start(tmp_path)
    try:
        statements = corpus(canaries, store_path)
        accepted = []
        for text in statements:
            try:
                reader = g.sql_stream(text)
                rows = reader.read_all()
            except fsql.FsqlError as e:
                shown = " ".join(str(x) for x in (e.message, e.detail, e.hint) if x)
                assert not canaries.leaked(shown), text
                assert e.sqlstate in REFUSED, (text, e.sqlstate, e.message)
                continue
            accepted.append(text)
            assert not canaries.leaked(str(rows.to_pylist())), text
        assert accepted == []
        assert canaries.connections == []
    finally:
        canaries.stop()
    assert _wait_for(lambda: _busy(g) == 0)


def test_streams_run_with_the_engine_settings(g: fsql.Store) -> None:
    from fsql.bind.confine import STATEMENT_TIMEOUT_MS

    g.query_memory_limit = 64 << 20
    try:
        with pytest.raises(fsql.FsqlError) as e:
            g.sql_stream(
                "SELECT number % 1000000 AS k, array_agg(number) AS a "
                "FROM numbers(20000000) GROUP BY 1"
            ).read_all()
        assert e.value.sqlstate == "53200"
        # a large result streams within the same small limit
        n = sum(
            b.num_rows for b in g.sql_stream("SELECT number, number::text FROM numbers(3000000)")
        )
        assert n == 3_000_000
    finally:
        g.query_memory_limit = None
    token = STATEMENT_TIMEOUT_MS.set(300)
    try:
        with pytest.raises(fsql.FsqlError) as e:
            g.sql_stream("SELECT count(*) FROM numbers(100000000000)").read_all()
        assert e.value.sqlstate == "57014"
    finally:
        STATEMENT_TIMEOUT_MS.reset(token)
    with pytest.raises(fsql.FsqlError) as e:
        g.sql_stream("SELECT * FROM system.tables")
    assert e.value.sqlstate == "42501"
    assert _wait_for(lambda: _busy(g) == 0)


def test_an_error_mid_stream_comes_after_the_rows_before_it(g: fsql.Store) -> None:
    # the engine runs a few blocks ahead of the reader: the row that fails
    # is far enough in for the first batches to be read before it
    reader = g.sql_stream(
        "SELECT number, throwIf(number = 2000000, 'boom') AS t FROM numbers(3000000)"
    )
    n = 0
    with pytest.raises(fsql.FsqlError) as e:
        for batch in reader:
            n += batch.num_rows
    assert 0 < n <= 2_000_000
    assert "boom" in e.value.message
    del reader
    assert _wait_for(lambda: _busy(g) == 0)
    assert g.sql("SELECT count(*) AS n FROM g").column("n").to_pylist() == [ROWS]


def test_a_dropped_stream_gives_its_engine_session_back(g: fsql.Store) -> None:
    reader = g.sql_stream("SELECT number FROM numbers(1000000000)")
    assert reader.read_next_batch().num_rows > 0
    assert _busy(g) == 1  # the stream holds a session while it is open
    del reader
    assert _wait_for(lambda: _busy(g) == 0)
    unread = g.sql_stream("SELECT number FROM numbers(1000000000)")
    assert _busy(g) == 1
    del unread  # never read from
    assert _wait_for(lambda: _busy(g) == 0)
    whole = g.sql_stream("SELECT number FROM numbers(100000)")
    assert sum(b.num_rows for b in whole) == 100_000
    assert _busy(g) == 0  # read to its end: given back at once


def test_a_cancel_stops_a_stream_before_its_first_rows(g: fsql.Store) -> None:
    # an aggregate has no rows to hand out until it is done: opening its
    # stream runs it (inside the caller's cancel scope)
    scope = CancelScope()
    threading.Timer(0.5, scope.cancel).start()
    started = time.monotonic()
    with pytest.raises(QueryCanceled), cancellable(scope):
        g.sql_stream("SELECT sum(sqrt(number)) FROM numbers(100000000000)")
    assert time.monotonic() - started < 5
    assert _wait_for(lambda: _busy(g) == 0)


def test_a_cancel_stops_a_stream_while_it_is_read(g: fsql.Store) -> None:
    scope = CancelScope()
    with cancellable(scope):
        # fast at first, then a row every billion or so
        reader = g.sql_stream(
            "SELECT number FROM numbers(100000000000) "
            "WHERE number < 100000 OR number % 1000000007 = 0"
        )
    assert reader.read_next_batch().num_rows > 0
    threading.Timer(0.5, scope.cancel).start()
    started = time.monotonic()
    with pytest.raises(QueryCanceled):
        for _ in reader:
            pass
    assert time.monotonic() - started < 5
    assert _wait_for(lambda: _busy(g) == 0)


def test_streams_and_whole_results_on_the_same_sessions_stay_intact(g: fsql.Store) -> None:
    # streams read the engine's blocks uncompressed and copy them out; the
    # pooled sessions they used give whole results (which point into the
    # engine's memory) with the compression those need back
    query = "SELECT number + {k} AS n, number::text AS t FROM numbers(1000000)"
    held = [(k, list(g.sql_stream(query.format(k=k)))) for k in range(3)]
    whole = [(k, g.sql(query.format(k=k))) for k in range(3)]
    for _ in range(3):  # other statements reuse the same memory
        g.sql("SELECT number * 3 AS a, (number * 7)::text AS b FROM numbers(2000000)")
    expected = np.arange(1_000_000)
    for k, batches in held:
        t = pa.Table.from_batches(batches)
        assert (t.column("n").to_numpy() == expected + k).all()
        assert t.column("t")[999_999].as_py() == "999999"
    for k, t in whole:
        assert (t.column("n").to_numpy() == expected + k).all()
        assert t.column("t")[999_999].as_py() == "999999"
