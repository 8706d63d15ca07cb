"""Confinement through the Python API: hundreds of hostile statements are
refused with a SQLSTATE, nothing leaks, nothing is reached, nothing is
changed. (The same corpus over the wire: tests/server/test_confinement_wire.py.)"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pyarrow as pa
import pytest
from hostile_corpus import REFUSED, Canaries, corpus

import fsql
from fsql.bind.confine import ENGINE_TABLE_FUNCTIONS


@pytest.fixture
def canaries(tmp_path):
    c = Canaries.start(tmp_path)
    yield c
    c.stop()


@pytest.fixture
def tx(store):
    store.create_feature_group(
        "tx",
        pa.table({"k": [1, 2], "ts": [dt.datetime(2024, 1, 1)] * 2, "amount": [1.5, 2.5]}),
        primary_key="k",
        event_time="ts",
    )
    return store


def test_hostile_corpus_is_refused_and_nothing_leaks(tx, canaries, store_path):
    statements = corpus(canaries, store_path)
    assert len(statements) >= 500
    states: Counter[str] = Counter()
    accepted = []
    for text in statements:
        try:
            result = tx.sql(text)
        except fsql.FsqlError as e:
            states[e.sqlstate] += 1
            shown = " ".join(str(x) for x in (e.message, e.detail, e.hint) if x)
            assert not canaries.leaked(shown), text
            assert e.sqlstate in REFUSED, (text, e.sqlstate, e.message)
            continue
        accepted.append(text)
        assert not canaries.leaked(str(result.to_pylist())), text
    # every statement is refused: none ran in the engine as written
    assert accepted == []
    # and refused by the binder for what it is, not by a syntax error
    assert states["42501"] + states["0A000"] + states["42P01"] + states["42883"] >= 0.9 * sum(
        states.values()
    ), states
    assert canaries.connections == []
    # nothing changed: the group, its rows and the catalog are as they were
    assert [g.name for g in tx.feature_groups()] == ["tx"]
    assert tx.sql("SELECT k, amount FROM tx ORDER BY k").to_pylist() == [
        {"k": 1, "amount": 1.5},
        {"k": 2, "amount": 2.5},
    ]
    tx.sql("INSERT INTO tx VALUES (3, TIMESTAMP '2024-01-02', 3.5)")  # commits still work
    assert tx.sql("SELECT count(*) AS n FROM tx").column("n").to_pylist() == [3]


def test_refusals_name_what_was_refused(tx):
    cases = {
        "SELECT * FROM \"file\"('/etc/hostname', 'LineAsString')": ("42501", "file"),
        "SELECT * FROM system.tables": ("42501", "system.tables"),
        "SELECT * FROM fsql_default.tx_v1": ("42501", "fsql_default.tx_v1"),
        "SELECT * FROM nowhere.tx": ("42P01", "nowhere.tx"),
        "SELECT * FROM no_such_function(1)": ("42883", "no_such_function"),
        "DROP TABLE fsql_default.tx_v1": ("0A000", "DROP TABLE"),
        "DELETE FROM tx": ("0A000", "DELETE"),
        "INSERT INTO elsewhere VALUES (1)": ("42P01", "elsewhere"),
    }
    for text, (state, named) in cases.items():
        with pytest.raises(fsql.FsqlError) as e:
            tx.sql(text)
        assert (e.value.sqlstate, named in e.value.message) == (state, True), (text, e.value)
        assert e.value.position is not None or state == "0A000", text


def test_what_is_allowed_still_runs(tx, tmp_path):
    assert tx.sql("SELECT count(*) AS n FROM public.tx").column("n").to_pylist() == [2]
    assert tx.sql('SELECT count(*) AS n FROM "default".public.tx').column("n").to_pylist() == [2]
    assert tx.sql("SELECT count(*) AS n FROM generate_series(1, 4)").column("n").to_pylist() == [4]
    assert tx.sql("SELECT count(*) AS n FROM numbers(5)").column("n").to_pylist() == [5]
    spine = tmp_path / "spine.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"k": [1], "ts": [dt.datetime(2024, 6, 1)]}), spine)
    got = tx.sql(f"SELECT FEATURES amount FROM read_parquet('{spine}') AS s AS OF s.ts")
    assert got.column("amount").to_pylist() == [1.5]


def test_read_roots_confine_files(tx, tmp_path):
    import pyarrow.parquet as pq

    inside = tmp_path / "allowed"
    inside.mkdir()
    pq.write_table(pa.table({"k": [2], "ts": [dt.datetime(2024, 6, 1)]}), inside / "s.parquet")
    outside = tmp_path / "s.parquet"
    pq.write_table(pa.table({"k": [2], "ts": [dt.datetime(2024, 6, 1)]}), outside)
    tx.read_roots = [str(inside)]
    try:
        q = "SELECT FEATURES amount FROM read_parquet('{}') AS s AS OF s.ts"
        assert tx.sql(q.format(inside / "s.parquet")).column("amount").to_pylist() == [2.5]
        for path in (outside, inside / ".." / "s.parquet", "/etc/hostname"):
            with pytest.raises(fsql.FsqlError) as e:
                tx.sql(q.format(path))
            assert e.value.sqlstate == "42501"
        # a missing file outside the roots is not told apart from a present one
        with pytest.raises(fsql.FsqlError) as e:
            tx.sql(q.format(tmp_path / "missing.parquet"))
        assert e.value.sqlstate == "42501"
    finally:
        tx.read_roots = None


def test_queries_that_read_nothing_outside_run_read_only(tx):
    from fsql.bind.confine import engine_settings, reads_outside
    from fsql.sql.dialect import parse

    (statement,) = parse("SELECT * FROM tx")
    assert not reads_outside(statement)
    settings = [s.sql() for s in engine_settings(tx, statement)]
    assert settings == ["readonly = 1"]
    tx.query_memory_limit = 10_000_000
    try:
        assert "max_memory_usage = 10000000" in [s.sql() for s in engine_settings(tx, statement)]
        with pytest.raises(fsql.FsqlError) as e:
            tx.sql("SELECT count(DISTINCT number) AS n FROM numbers(5000000)")
        assert e.value.sqlstate == "53200"
        assert tx.sql("SELECT count(*) AS n FROM tx").column("n").to_pylist() == [2]
    finally:
        tx.query_memory_limit = None


def test_every_engine_table_function_but_the_pure_ones_is_refused(tx):
    refused = 0
    for name in sorted(ENGINE_TABLE_FUNCTIONS):
        try:
            tx.sql(f'SELECT * FROM "{name}"(1)')
        except fsql.FsqlError as e:
            if name in ("numbers", "zeros", "generate_series", "generateseries"):
                continue
            assert e.sqlstate == "42501", (name, e)
            refused += 1
        else:
            assert name in ("numbers", "zeros", "generate_series", "generateseries"), name
    assert refused == len(ENGINE_TABLE_FUNCTIONS) - 4


def test_a_statement_timeout_ends_the_statement_with_57014(tx):
    from fsql.bind.confine import STATEMENT_TIMEOUT_MS

    token = STATEMENT_TIMEOUT_MS.set(200)
    try:
        with pytest.raises(fsql.FsqlError) as e:
            tx.sql("SELECT count(*) FROM numbers(100000000000)")
        assert e.value.sqlstate == "57014"
        assert e.value.message.startswith("canceling statement due to statement timeout")
    finally:
        STATEMENT_TIMEOUT_MS.reset(token)
    assert tx.sql("SELECT count(*) AS n FROM tx").column("n").to_pylist() == [2]
