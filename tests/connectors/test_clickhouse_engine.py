"""The ClickHouse server engine.

No ClickHouse server runs here (the distribution's package is a 2018 release,
too old for DateTime64 and Arrow), so the end-to-end test runs only when
``FSQL_CLICKHOUSE_URL`` points at one. The rest checks, without a server,
what the engine sends: input rewriting, URL parsing, types, and a real
refused connection.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

import pyarrow as pa
import pytest
from sqlglot import exp

import fsql
from fsql.connectors.clickhouse_engine import (
    ClickHouseEngine,
    _direct_insert,
    _parse,
    arrow_to_clickhouse,
    parse_url,
    rewrite_inputs,
)
from fsql.connectors.engine import input_ref
from fsql.errors import ConnectionFailure, EngineError, InvalidParameter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_parse_url():
    args = parse_url("clickhouse://alice:s%40cret@db.example:9000/features?max_threads=4")
    assert args == {
        "host": "db.example",
        "port": 9000,
        "username": "alice",
        "password": "s@cret",
        "database": "features",
        "secure": False,
        "settings": {"max_threads": "4"},
    }
    tls = parse_url("clickhouses://h")
    assert (tls["port"], tls["secure"], tls["username"], tls["database"]) == (
        8443,
        True,
        "default",
        "default",
    )
    assert parse_url("http://h:8123")["port"] == 8123


def test_password_from_environment(monkeypatch):
    monkeypatch.setenv("CH_PW", "from-env")
    assert parse_url("clickhouse://u@h/db?password_env=CH_PW")["password"] == "from-env"
    with pytest.raises(InvalidParameter):
        parse_url("clickhouse://u@h/db?password_env=FSQL_SURELY_UNSET_VAR")
    with pytest.raises(InvalidParameter):
        parse_url("mysql://h/db")


def test_arrow_types_of_uploaded_inputs():
    def ch(t: pa.DataType) -> str:
        return arrow_to_clickhouse(t).sql("clickhouse")

    assert ch(pa.int64()) == "Nullable(Int64)"
    assert ch(pa.uint64()) == "Nullable(UInt64)"
    assert ch(pa.string()) == "Nullable(String)"
    assert ch(pa.timestamp("us")) == "Nullable(DateTime64(6))"
    assert ch(pa.timestamp("us", tz="UTC")) == "Nullable(DateTime64(6, 'UTC'))"
    assert ch(pa.list_(pa.float64())) == "Array(Nullable(Float64))"


def test_rewrite_inputs_points_at_uploaded_tables():
    spine = exp.select("*").from_(
        exp.Table(this=input_ref(0), alias=exp.TableAlias(this=exp.to_identifier("s")))
    )
    q = spine.join(exp.Table(this=input_ref(1)), on="1 = 1").sql("clickhouse")
    out = rewrite_inputs(q, ["_t0", "_t1"]).sql("clickhouse")
    assert (
        out == 'SELECT * FROM "_t0" AS s CROSS JOIN "_t1" ON 1 = 1'
        or out == 'SELECT * FROM "_t0" AS s JOIN "_t1" ON 1 = 1'
    )
    assert "Python" not in out
    built = exp.select("*").from_(input_ref(0)).sql("clickhouse")
    assert rewrite_inputs(built, ["tmp"]).sql("clickhouse") == 'SELECT * FROM "tmp"'
    with pytest.raises(EngineError):
        rewrite_inputs(built, [])


def test_insert_select_star_from_input_is_a_direct_arrow_insert():
    target = exp.Table(
        this=exp.to_identifier("t", quoted=True), db=exp.to_identifier("d", quoted=True)
    )
    cols = exp.Schema(this=target, expressions=[exp.to_identifier("a", quoted=True)])
    sql = exp.insert(exp.select(exp.Star()).from_(input_ref(0)), cols).sql("clickhouse")
    direct = _direct_insert(_parse(sql), 1)
    assert direct is not None
    table, columns = direct
    assert (table.name, table.db, columns) == ("t", "d", ["a"])
    filtered = exp.insert(exp.select(exp.Star()).from_(input_ref(0)).where("a > 1"), target)
    assert _direct_insert(_parse(filtered.sql("clickhouse")), 1) is None
    assert _direct_insert(_parse(sql), 2) is None


def test_refused_connection_is_a_clear_error(tmp_path):
    port = free_port()
    with pytest.raises(ConnectionFailure) as e:
        ClickHouseEngine(f"clickhouse://127.0.0.1:{port}/default")
    assert e.value.sqlstate == "08006"
    assert f"127.0.0.1:{port}" in e.value.message
    # through the store, the same error, and the folder keeps its settings
    with fsql.connect(tmp_path / "s"):
        pass
    config = (tmp_path / "s" / "fsql.json").read_text()
    with pytest.raises(ConnectionFailure):
        fsql.connect(tmp_path / "s", offline=f"clickhouse://127.0.0.1:{port}/default")
    assert (tmp_path / "s" / "fsql.json").read_text() == config


@pytest.mark.skipif(
    not os.environ.get("FSQL_CLICKHOUSE_URL"),
    reason="set FSQL_CLICKHOUSE_URL to a ClickHouse server",
)
def test_store_on_a_clickhouse_server(tmp_path):
    url = os.environ["FSQL_CLICKHOUSE_URL"]
    t0 = dt.datetime(2024, 1, 1)
    data = pa.table({"id": [1, 2], "at": pa.array([t0, t0], pa.timestamp("us")), "v": [1.0, 2.0]})
    with fsql.connect(tmp_path / "s", offline=url) as store:
        try:
            fg = store.create_feature_group("ch_test", data, primary_key="id", event_time="at")
            first = fg.commits()[0]
            fg.insert(pa.table({"id": [1], "at": pa.array([t0], pa.timestamp("us")), "v": [9.0]}))
            assert fg.read().column("v").to_pylist() == [9.0, 2.0]
            assert fg.read(system_time=first.commit_time_us).column("v").to_pylist() == [1.0, 2.0]
            assert fg.read().column("at").to_pylist() == [t0, t0]
            joined = store.engine.query(
                exp.select("*").from_(input_ref(0)).sql("clickhouse"), [data]
            )
            assert joined.num_rows == 2
            batches = list(store.engine.stream("SELECT number FROM system.numbers LIMIT 10", 3))
            assert sum(b.num_rows for b in batches) == 10
        finally:
            for g in store.feature_groups():
                store.drop_feature_group(g)
