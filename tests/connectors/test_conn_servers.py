"""Connectors whose real servers are not on every machine: a ClickHouse
server (FSQL_TEST_CLICKHOUSE_URL, e.g. http://default:@127.0.0.1:8123) and
Trino (FSQL_TEST_TRINO_URL, e.g. http://fsql@127.0.0.1:8080/memory/default).
Without them these tests skip and say why; option handling and the type
mapping are checked everywhere."""

from __future__ import annotations

import os
from urllib.parse import urlparse

import pytest

from fsql.connectors.registry import make_connector
from fsql.connectors.trino import trino_type
from fsql.errors import FsqlError

CLICKHOUSE_URL = os.environ.get("FSQL_TEST_CLICKHOUSE_URL") or os.environ.get("FSQL_CLICKHOUSE_URL")
TRINO_URL = os.environ.get("FSQL_TEST_TRINO_URL")


def test_trino_options_and_types():
    conn = make_connector("tr", "trino", {"url": "https://alice@trino.internal:8443/hive/sales"})
    assert conn.options["host"] == "trino.internal" and conn.options["port"] == "8443"
    assert conn.options["user"] == "alice" and conn.options["http_scheme"] == "https"
    assert conn.options["catalog"] == "hive" and conn.options["schema"] == "sales"
    assert "trino.internal:8443/hive" in conn.label()
    assert trino_type("decimal(12,2)").name == "numeric(12,2)"
    assert trino_type("timestamp(3) with time zone").name == "timestamptz"
    assert trino_type("timestamp(6)").name == "timestamp"
    assert trino_type("array(varchar)").name == "text[]"
    assert trino_type("interval day to second") is None


def test_trino_unreachable(store):
    with pytest.raises(FsqlError) as e:
        store.create_connector("tr", "trino", {"host": "127.0.0.1", "port": "1"})
    assert e.value.sqlstate == "08001" and 'connector "tr"' in str(e.value)
    assert store.connectors().num_rows == 0


def test_clickhouse_url_option():
    conn = make_connector("ch", "clickhouse", {"url": "clickhouses://bob@ch.internal/features"})
    assert conn.options["host"] == "ch.internal" and conn.options["port"] == "8443"
    assert conn.options["user"] == "bob" and conn.options["database"] == "features"
    assert conn.options["secure"] == "true"
    with pytest.raises(FsqlError) as e:
        make_connector("ch", "clickhouse", {"url": "clickhouse://bob:pw123@ch.internal/x"})
    assert e.value.sqlstate == "28000" and "pw123" not in str(e.value)


def test_clickhouse_unreachable(store):
    with pytest.raises(FsqlError) as e:
        store.create_connector("ch", "clickhouse", {"host": "127.0.0.1", "port": "1"})
    assert e.value.sqlstate == "08001" and 'connector "ch"' in str(e.value)
    assert store.connectors().num_rows == 0


@pytest.mark.skipif(
    not CLICKHOUSE_URL, reason="FSQL_TEST_CLICKHOUSE_URL / FSQL_CLICKHOUSE_URL not set (no server)"
)
def test_clickhouse_server_source(store, monkeypatch):
    u = urlparse(CLICKHOUSE_URL or "")
    options = {"host": u.hostname or "127.0.0.1", "port": str(u.port or 8123)}
    if u.username:
        options["user"] = u.username
    if u.password:
        monkeypatch.setenv("FSQL_TEST_CH_PW", u.password)
        options["password_env"] = "FSQL_TEST_CH_PW"
    store.create_connector("ch", "clickhouse", options)
    store.create_on_demand_feature_group(
        "nums",
        connector="ch",
        query="SELECT number AS k, number * 2 AS v, toDateTime('2024-01-01 00:00:00') AS ts "
        "FROM system.numbers LIMIT 5",
        primary_key="k",
        event_time="ts",
    )
    got = store.sql("SELECT k, v FROM nums ORDER BY k").to_pylist()
    assert got == [{"k": i, "v": 2 * i} for i in range(5)]
    plan = "\n".join(store.sql("EXPLAIN SELECT * FROM nums").column(0).to_pylist())
    assert "(clickhouse, fetch)" in plan


@pytest.mark.skipif(not TRINO_URL, reason="FSQL_TEST_TRINO_URL is not set (no Trino server)")
def test_trino_source_types(store):
    store.create_connector("tr", "trino", {"url": TRINO_URL or ""})
    store.create_on_demand_feature_group(
        "t",
        connector="tr",
        query="SELECT 1 AS k, CAST(2.5 AS DECIMAL(4,2)) AS d, 'x' AS s, TRUE AS b, "
        "DATE '2024-01-02' AS dd, TIMESTAMP '2024-01-01 10:00:00' AS ts",
        primary_key="k",
        event_time="ts",
    )
    types = {f.name: f.type for f in store.get_feature_group("t").features}
    assert types["d"] == "numeric(4,2)" and types["b"] == "boolean" and types["dd"] == "date"
    assert store.sql("SELECT s FROM t").to_pylist() == [{"s": "x"}]


@pytest.mark.parametrize(
    ("message", "sqlstate"),
    [
        ('column "b" does not exist', "42703"),  # PostgreSQL
        ("Column 'x' cannot be resolved", "42703"),  # Trino
        ("Unknown expression identifier `nope` in scope", "42703"),  # ClickHouse
        ("Unknown column 'v' in 'field list'", "42703"),  # MySQL
        ("Unknown table expression identifier 'x'", "42P01"),  # ClickHouse
        ("Table 'test.t' doesn't exist", "42P01"),  # MySQL
        ("line 1:15: Table 'memory.default.x' does not exist", "42P01"),  # Trino
        ("Access denied for user 'root'@'localhost'", "28P01"),  # MySQL
        ("Max retries exceeded with url: /v1/statement", "08001"),  # Trino client
    ],
)
def test_source_errors_are_classified(message, sqlstate):
    from fsql.connectors.registry import classify

    conn = make_connector("src", "trino", {})
    err = classify(conn, Exception(message), "t")
    assert err.sqlstate == sqlstate
    assert 'connector "src"' in str(err)
