"""On-demand feature groups over the real local MariaDB (MySQL protocol)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from fsql.errors import FsqlError

UTC = dt.UTC
MYSQL_OPTIONS = {"host": "127.0.0.1", "port": "3306", "database": "test", "user": "root"}


def test_type_mapping_and_nulls(store, maria):
    t = maria.table(
        "od_types",
        "id bigint, i1 tinyint, i2 smallint, i4 int, iu int unsigned, n decimal(10,2), "
        "f4 float, f8 double, txt text, vc varchar(20), flag boolean, d date, "
        "ts datetime(6), tstz timestamp(6) NULL",
        "(1, -1, 2, 3, 4000000000, 12345678.91, 1.5, 2.25, 'héllo', 'v', true, '2024-02-29', "
        "'2024-01-01 10:00:00.123456', '2024-01-01 08:00:00'),"
        "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
        "'2024-01-02 00:00:00', NULL)",
    )
    store.create_connector("shop", "mysql", MYSQL_OPTIONS)
    store.sql(
        "CREATE ON DEMAND FEATURE GROUP typed CONNECTOR shop PRIMARY KEY (id) EVENT TIME ts "
        f"AS SELECT * FROM {t}"
    )
    types = {f.name: f.type for f in store.get_feature_group("typed").features}
    assert types == {
        "id": "bigint",
        "i1": "smallint",
        "i2": "smallint",
        "i4": "integer",
        "iu": "bigint",
        "n": "numeric(10,2)",
        "f4": "real",
        "f8": "double precision",
        "txt": "text",
        "vc": "text",
        "flag": "boolean",
        "d": "date",
        "ts": "timestamp",
        "tstz": "timestamptz",
    }
    rows = store.sql("SELECT * FROM typed ORDER BY id").to_pylist()
    r = rows[0]
    assert (r["i1"], r["i2"], r["i4"], r["iu"]) == (-1, 2, 3, 4000000000)
    assert r["n"] == Decimal("12345678.91")
    assert r["f4"] == pytest.approx(1.5) and r["f8"] == 2.25
    assert r["txt"] == "héllo" and r["vc"] == "v" and r["flag"] is True
    assert r["d"] == dt.date(2024, 2, 29)
    assert r["ts"] == dt.datetime(2024, 1, 1, 10, 0, 0, 123456)
    assert r["tstz"] == dt.datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    assert [k for k, v in rows[1].items() if v is not None] == ["id", "ts"]


def test_point_in_time_join_and_pushdown(store, maria):
    t = maria.table(
        "od_orders",
        "customer_id bigint, total double, ts datetime(6)",
        "(1, 10, '2024-01-01'), (1, 20, '2024-02-01'), (2, 7, '2024-01-05')",
    )
    store.create_connector("shop", "mysql", MYSQL_OPTIONS)
    store.create_on_demand_feature_group(
        "orders",
        connector="shop",
        query=f"SELECT customer_id, total, ts FROM {t}",
        primary_key="customer_id",
        event_time="ts",
    )
    spine = pa.table(
        {
            "customer_id": [1, 1, 2, 3],
            "at": [
                dt.datetime(2024, 1, 15),
                dt.datetime(2024, 3, 1),
                dt.datetime(2024, 1, 1),
                dt.datetime(2024, 1, 1),
            ],
        }
    )
    store.create_feature_group("spine", spine, primary_key="customer_id", event_time="at")
    got = store.sql("SELECT FEATURES total FROM spine AS OF spine.at").column("total").to_pylist()
    assert got == [10.0, 20.0, None, None]
    plan = "\n".join(
        store.sql("EXPLAIN SELECT * FROM orders WHERE customer_id = 1 AND total > 5")
        .column(0)
        .to_pylist()
    )
    line = next(x for x in plan.split("\n") if x.startswith("-- on-demand orders"))
    assert "(mysql, pushdown)" in line
    assert f"FROM `{t}` WHERE `customer_id` = 1 AND `total` > 5" in line
    assert store.sql(
        "SELECT total FROM orders WHERE customer_id = 1 AND total > 15"
    ).to_pylist() == [{"total": 20.0}]


def test_source_functions_run_at_the_source(store, maria):
    """A query using source functions is fetched through the client, so it
    means what it means in MariaDB."""
    t = maria.table("od_fn", "id bigint, name varchar(20)", "(1, 'Ada'), (2, 'bob')")
    store.create_connector("shop", "mysql", MYSQL_OPTIONS)
    store.create_on_demand_feature_group(
        "names",
        connector="shop",
        query=f"SELECT id, UPPER(name) AS up, CHAR_LENGTH(name) AS n FROM {t}",
        primary_key="id",
    )
    assert store.sql("SELECT * FROM names ORDER BY id").to_pylist() == [
        {"id": 1, "up": "ADA", "n": 3},
        {"id": 2, "up": "BOB", "n": 3},
    ]
    plan = "\n".join(store.sql("EXPLAIN SELECT * FROM names").column(0).to_pylist())
    assert "(mysql, fetch)" in plan


def test_wrong_password(store, maria, monkeypatch):
    monkeypatch.setenv("FSQL_TEST_MARIA_PW", "definitely-wrong-pw")
    with pytest.raises(FsqlError) as e:
        store.create_connector(
            "shop", "mysql", {**MYSQL_OPTIONS, "password_env": "FSQL_TEST_MARIA_PW"}
        )
    assert e.value.sqlstate == "28P01"
    assert 'connector "shop"' in str(e.value)
    assert "definitely-wrong-pw" not in str(e.value)
    assert store.connectors().num_rows == 0


def test_unreachable_and_vanished(store, maria):
    with pytest.raises(FsqlError) as e:
        store.create_connector(
            "down", "mysql", {**MYSQL_OPTIONS, "port": "1", "connect_timeout": "2"}
        )
    assert e.value.sqlstate == "08001" and 'connector "down"' in str(e.value)
    t = maria.table("od_gone", "id bigint, v int", "(1, 2)")
    store.create_connector("shop", "mysql", MYSQL_OPTIONS)
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP g CONNECTOR shop PRIMARY KEY (id) AS SELECT id, v FROM {t}"
    )
    maria.execute(f"ALTER TABLE {t} DROP COLUMN v")
    with pytest.raises(FsqlError) as e:
        store.sql("SELECT * FROM g")
    assert e.value.sqlstate == "42703" and t in str(e.value) and 'connector "shop"' in str(e.value)
    maria.execute(f"DROP TABLE {t}")
    with pytest.raises(FsqlError) as e:
        store.sql("SELECT * FROM g")
    assert e.value.sqlstate == "42P01" and t in str(e.value)


def test_unmappable_type(store, maria):
    t = maria.table("od_bad", "id bigint, t time", "(1, '10:00:00')")
    store.create_connector("shop", "mysql", MYSQL_OPTIONS)
    with pytest.raises(FsqlError) as e:
        store.sql(
            "CREATE ON DEMAND FEATURE GROUP bad CONNECTOR shop PRIMARY KEY (id) "
            f"AS SELECT * FROM {t}"
        )
    assert e.value.sqlstate == "42804" and '"t"' in str(e.value) and "time" in str(e.value)
    assert store.feature_groups() == []


def test_datetime_without_fraction(store, maria):
    t = maria.table("od_dt0", "id bigint, at datetime", "(1, '2024-05-06 07:08:09')")
    store.create_connector("shop", "mysql", MYSQL_OPTIONS)
    store.sql(
        "CREATE ON DEMAND FEATURE GROUP dt0 CONNECTOR shop PRIMARY KEY (id) EVENT TIME at "
        f"AS SELECT id, at FROM {t}"
    )
    got = store.sql("SELECT at FROM dt0").to_pylist()
    assert got == [{"at": dt.datetime(2024, 5, 6, 7, 8, 9)}]


def test_connector_table_errors_name_the_connector(store, maria, monkeypatch):
    t = maria.table("od_direct", "id bigint, v int", "(1, 2)")
    store.create_connector("shop", "mysql", MYSQL_OPTIONS)
    assert store.sql(f"SELECT v FROM shop.{t}").to_pylist() == [{"v": 2}]
    with pytest.raises(FsqlError) as e:
        store.sql("SELECT * FROM shop.no_such_table_fsql")
    assert e.value.sqlstate == "42P01"
    assert 'connector "shop"' in str(e.value) and "no_such_table_fsql" in str(e.value)
    assert "mysql(" not in str(e.value) and "Code:" not in str(e.value)
    monkeypatch.setenv("FSQL_TEST_MARIA_PW", "definitely-wrong-pw")
    store.alter_connector("shop", {"password_env": "FSQL_TEST_MARIA_PW"}, check=False)
    with pytest.raises(FsqlError) as e:
        store.sql(f"SELECT * FROM shop.{t}")
    assert e.value.sqlstate == "28P01" and 'connector "shop"' in str(e.value)
    assert "definitely-wrong-pw" not in str(e.value)
    store.alter_connector(
        "shop", {"password_env": "", "port": "1", "connect_timeout": "2"}, check=False
    )
    with pytest.raises(FsqlError) as e:
        store.sql(f"SELECT * FROM shop.{t}")
    assert e.value.sqlstate == "08001" and 'connector "shop"' in str(e.value)


def test_source_error_during_a_pushdown_read(store, maria):
    t = maria.table("od_big", "id bigint, big bigint", "(1, 9223372036854775807)")
    v = maria.view("od_bigv", f"SELECT id, big + id AS o FROM {t}")
    store.create_connector("shop", "mysql", MYSQL_OPTIONS)
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP g CONNECTOR shop PRIMARY KEY (id) AS SELECT * FROM {v}"
    )
    for text in ("SELECT * FROM g", f"SELECT * FROM shop.{v}"):
        with pytest.raises(FsqlError) as e:
            store.sql(text)
        err = e.value
        assert err.sqlstate == "22003", text
        assert 'connector "shop"' in err.message and f"source object {v}" in err.message, text
        assert "out of range" in err.message, text
        assert err.detail is None and "mysql(" not in str(err) and "Code:" not in str(err)


def test_tinyint1_is_boolean_by_mysql_truthiness(store, maria):
    """MySQL's BOOLEAN is tinyint(1), which holds -128..127: any nonzero
    value reads as true (as ``flag IS TRUE`` holds at the server), in
    pushdown and fetch mode alike; CAST in the query keeps the integer."""
    t = maria.table(
        "od_flag", "id bigint, flag tinyint(1)", "(1, 0), (2, 1), (3, 2), (4, -1), (5, NULL)"
    )
    store.create_connector("shop", "mysql", MYSQL_OPTIONS)
    for name, query in (
        ("pushed", f"SELECT id, flag FROM {t}"),
        ("fetched", f"SELECT id, lower('a') AS a, flag FROM {t}"),
    ):
        store.sql(
            f"CREATE ON DEMAND FEATURE GROUP {name} CONNECTOR shop PRIMARY KEY (id) AS {query}"
        )
        assert store.get_feature_group(name).features[-1].type == "boolean"
        got = store.sql(f"SELECT flag FROM {name} ORDER BY id").column("flag").to_pylist()
        assert got == [False, True, True, True, None], name
    store.sql(
        "CREATE ON DEMAND FEATURE GROUP raw CONNECTOR shop PRIMARY KEY (id) "
        f"AS SELECT id, CAST(flag AS int) AS flag FROM {t}"
    )
    assert store.get_feature_group("raw").features[-1].type == "integer"
    got = store.sql("SELECT flag FROM raw ORDER BY id").column("flag").to_pylist()
    assert got == [0, 1, 2, -1, None]
