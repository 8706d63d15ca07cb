"""The online store, the same suite on every backend (embedded, PostgreSQL,
MariaDB, Redis) against the real local servers."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

import fsql
from fsql.errors import FsqlError
from fsql.online.base import NotOnline, OnlineStoreUnavailable, ver_of
from fsql.online.prepared import LookupTemplate
from fsql.types import from_name

T0 = datetime(2024, 1, 1)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def make_groups(store: fsql.Store, n: int = 5) -> None:
    """Two online groups keyed by customer_id."""
    ids = list(range(1, n + 1))
    store.create_feature_group(
        "tx",
        pa.table(
            {
                "customer_id": ids,
                "ts": [day(1)] * n,
                "amount": [float(i) * 1.5 for i in ids],
                "count_7d": [i * 10 for i in ids],
                "channel": [f"web{i}" for i in ids],
            }
        ),
        primary_key="customer_id",
        event_time="ts",
        online=True,
    )
    store.create_feature_group(
        "profile",
        pa.table(
            {
                "customer_id": ids,
                "updated": [day(0)] * n,
                "age": pa.array([20 + i for i in ids], pa.int32()),
                "country": ["DE" if i % 2 else "FR" for i in ids],
            }
        ),
        primary_key="customer_id",
        event_time="updated",
        online=True,
    )


def sqlstate(excinfo: pytest.ExceptionInfo[FsqlError]) -> str:
    return excinfo.value.sqlstate


# --------------------------------------------------------------------------
# latest row per key


def test_latest_row_per_key_older_event_never_overwrites(ostore: fsql.Store) -> None:
    fg = ostore.create_feature_group(
        "tx",
        pa.table({"customer_id": [1, 2], "ts": [day(5), day(5)], "amount": [1.0, 2.0]}),
        primary_key="customer_id",
        event_time="ts",
        online=True,
    )
    get = lambda k: ostore.get_feature_vector(["amount"], {"customer_id": k})[0]  # noqa: E731
    assert (get(1), get(2)) == (1.0, 2.0)
    # an older event arrives later: ignored online
    fg.insert(pa.table({"customer_id": [1], "ts": [day(3)], "amount": [-1.0]}))
    assert get(1) == 1.0
    # the same event time again: the later commit wins (an upsert)
    fg.insert(pa.table({"customer_id": [1], "ts": [day(5)], "amount": [11.0]}))
    assert get(1) == 11.0
    # a newer event, and several events of one key in one commit: the newest wins
    fg.insert(
        pa.table(
            {
                "customer_id": [2, 2, 2, 3],
                "ts": [day(7), day(9), day(8), day(1)],
                "amount": [7.0, 9.0, 8.0, 3.0],
            }
        )
    )
    assert (get(1), get(2), get(3)) == (11.0, 9.0, 3.0)
    assert ostore.check_consistency("tx").ok


def test_group_without_event_time_last_commit_wins(ostore: fsql.Store) -> None:
    fg = ostore.create_feature_group(
        "dim",
        pa.table({"sku": ["a", "b"], "price": [1.0, 2.0]}),
        primary_key="sku",
        online=True,
    )
    fg.insert(pa.table({"sku": ["a"], "price": [5.0]}))
    assert ostore.get_feature_vectors(["price"], [{"sku": "a"}, {"sku": "b"}]).column(
        "price"
    ).to_pylist() == [5.0, 2.0]


# --------------------------------------------------------------------------
# serving shapes


def test_vector_in_requested_order_across_groups_with_typed_nulls(ostore: fsql.Store) -> None:
    make_groups(ostore)
    features = ["country", "amount", "age", "tx.channel", "count_7d"]
    assert ostore.get_feature_vector(features, {"customer_id": 3}) == ["DE", 4.5, 23, "web3", 30]
    assert ostore.get_feature_vector(features, {"customer_id": 3}, return_type="dict") == {
        "country": "DE",
        "amount": 4.5,
        "age": 23,
        "channel": "web3",
        "count_7d": 30,
    }
    assert ostore.get_feature_vector(features, {"customer_id": 999}) == [None] * 5
    table = ostore.get_feature_vector(features, {"customer_id": 999}, return_type="arrow")
    assert table.schema.types == [pa.string(), pa.float64(), pa.int32(), pa.string(), pa.int64()]
    assert table.num_rows == 1 and all(c.null_count == 1 for c in table.columns)
    # the primary key itself may be requested (qualified: it is in both groups)
    assert ostore.get_feature_vector(["profile.customer_id", "age"], {"customer_id": 2}) == [2, 22]
    # fg.* expands to the non-key features in table order
    assert ostore.get_feature_vector(["profile.*"], {"customer_id": 1}, return_type="dict") == {
        "updated": day(0),
        "age": 21,
        "country": "DE",
    }


def test_batch_forms_keep_order_and_duplicates(ostore: fsql.Store) -> None:
    make_groups(ostore)
    features = ["amount", "age"]
    entities = [{"customer_id": k} for k in (5, 77, 1, 5)]
    expected_amount = [7.5, None, 1.5, 7.5]
    expected_age = [25, None, 21, 25]
    out = ostore.get_feature_vectors(features, entities)
    assert out.column_names == features
    assert out.schema.types == [pa.float64(), pa.int32()]
    assert out.column("amount").to_pylist() == expected_amount
    assert out.column("age").to_pylist() == expected_age
    by_columns = ostore.get_feature_vectors(features, {"customer_id": [5, 77, 1, 5]})
    assert by_columns.equals(out)
    by_arrow = ostore.get_feature_vectors(
        features, pa.table({"customer_id": pa.array([5, 77, 1, 5], pa.int32())})
    )
    assert by_arrow.equals(out)
    assert ostore.get_feature_vectors(features, entities, return_type="list") == [
        list(r) for r in zip(expected_amount, expected_age, strict=True)
    ]
    assert ostore.get_feature_vectors(features, [], return_type="list") == []


def test_types_round_trip_with_composite_key(ostore: fsql.Store) -> None:
    schema = {
        "region": "text",
        "shop": "bigint",
        "ts": "timestamptz",
        "ratio": "double precision",
        "flag": "boolean",
        "price": "numeric(12,2)",
        "born": "date",
        "seen": "timestamp",
        "blob": "bytea",
        "tags": "text[]",
        "scores": "bigint[]",
        "note": "text",
        "small": "smallint",
        "r": "real",
    }
    ts = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
    rows = pa.table(
        {
            "region": ["eu", "eu", "üñí 🚀"],
            "shop": [1, 2, 1],
            "ts": pa.array([ts, ts, ts], pa.timestamp("us", tz="UTC")),
            "ratio": [0.1, float("nan"), None],
            "flag": [True, False, None],
            "price": pa.array([Decimal("12.34"), Decimal("-0.01"), None], pa.decimal128(12, 2)),
            "born": [date(1990, 1, 2), date(1969, 12, 31), None],
            "seen": [datetime(1960, 1, 1, 0, 0, 0, 1), None, datetime(2030, 1, 1)],
            "blob": [b"\x00\xff", b"", None],
            "tags": [["a", None, "c"], [], None],
            "scores": [[1, 2], None, [3]],
            "note": ['quote " and \\ backslash', None, "x"],
            "small": pa.array([1, -2, None], pa.int16()),
            "r": pa.array([1.5, None, -2.25], pa.float32()),
        }
    )
    ostore.create_feature_group(
        "mixed", rows, primary_key=["region", "shop"], event_time="ts", schema=schema, online=True
    )
    features = [n for n in schema if n not in ("region", "shop")]
    got = ostore.get_feature_vector(features, {"region": "eu", "shop": 1}, return_type="dict")
    assert got == {
        "ts": ts,
        "ratio": 0.1,
        "flag": True,
        "price": Decimal("12.34"),
        "born": date(1990, 1, 2),
        "seen": datetime(1960, 1, 1, 0, 0, 0, 1),
        "blob": b"\x00\xff",
        "tags": ["a", None, "c"],
        "scores": [1, 2],
        "note": 'quote " and \\ backslash',
        "small": 1,
        "r": 1.5,
    }
    second = ostore.get_feature_vector(features, {"region": "eu", "shop": 2}, return_type="dict")
    assert math.isnan(second["ratio"])
    assert second["born"] == date(1969, 12, 31)
    assert second["tags"] == [] and second["blob"] == b"" and second["price"] == Decimal("-0.01")
    third = ostore.get_feature_vector(features, {"region": "üñí 🚀", "shop": 1}, return_type="dict")
    # ClickHouse arrays are not nullable: offline (and so online) a NULL array is []
    assert third["ratio"] is None and third["tags"] == [] and third["r"] == -2.25
    # typed Arrow output equals the offline row for every column
    out = ostore.get_feature_vectors(
        features, [{"region": "eu", "shop": 1}, {"region": "nope", "shop": 1}]
    )
    offline = ostore.get_feature_group("mixed").read()
    expected = offline.filter(pa.compute.equal(offline.column("shop"), 1)).slice(0, 1)
    for name in features:
        declared = from_name(schema[name]).arrow
        assert out.schema.field(name).type == declared, name
        assert out.column(name)[0] == expected.column(name).cast(declared)[0], name
        assert out.column(name)[1].as_py() is None
    # key matching is exact: no case folding, composite keys need every column
    assert ostore.get_feature_vector(["note"], {"region": "EU", "shop": 1}) == [None]
    assert ostore.check_consistency("mixed").ok


# --------------------------------------------------------------------------
# bad input


def test_errors_carry_sqlstate(ostore: fsql.Store) -> None:
    make_groups(ostore)
    ostore.create_feature_group(
        "offline_only",
        pa.table({"customer_id": [1], "score": [0.5]}),
        primary_key="customer_id",
    )
    with pytest.raises(FsqlError) as e:
        ostore.get_feature_vector(["amout"], {"customer_id": 1})
    assert sqlstate(e) == "42703" and "amount" in (e.value.hint or "")
    with pytest.raises(FsqlError) as e:
        ostore.get_feature_vector(["tx.nope"], {"customer_id": 1})
    assert sqlstate(e) == "42703"
    with pytest.raises(FsqlError) as e:
        ostore.get_feature_vector(["nope.amount"], {"customer_id": 1})
    assert sqlstate(e) == "42P01"
    with pytest.raises(FsqlError) as e:
        ostore.get_feature_vector(["customer_id"], {"customer_id": 1})
    assert sqlstate(e) == "42702" and "tx.customer_id" in e.value.message
    with pytest.raises(FsqlError) as e:
        ostore.get_feature_vector(["amount"], {"customer": 1})
    assert sqlstate(e) == "22023" and "customer_id" in e.value.message
    with pytest.raises(FsqlError) as e:
        ostore.get_feature_vector(["amount"], {"customer_id": "1"})
    assert sqlstate(e) == "42804" and "bigint" in e.value.message
    with pytest.raises(FsqlError) as e:
        ostore.get_feature_vector(["amount"], {"customer_id": 1.0})
    assert sqlstate(e) == "42804"
    with pytest.raises(FsqlError) as e:
        ostore.get_feature_vector(["amount"], {"customer_id": None})
    assert sqlstate(e) == "22004"
    with pytest.raises(FsqlError) as e:
        ostore.get_feature_vectors(["amount"], {"customer_id": ["x"]})
    assert sqlstate(e) == "42804"
    with pytest.raises(FsqlError) as e:
        ostore.get_feature_vectors(["amount"], {"id": [1]})
    assert sqlstate(e) == "22023"
    with pytest.raises(NotOnline) as e:
        ostore.get_feature_vector(["score"], {"customer_id": 1})
    assert sqlstate(e) == "55000" and "SET ONLINE" in (e.value.hint or "")
    with pytest.raises(NotOnline):
        ostore.materialize("offline_only")
    with pytest.raises(FsqlError) as e:
        ostore.get_feature_vector([], {"customer_id": 1})
    assert sqlstate(e) == "22023"


# --------------------------------------------------------------------------
# toggling, materialize, consistency


def test_toggle_online_materializes_and_offline_commits_are_caught_up(ostore: fsql.Store) -> None:
    fg = ostore.create_feature_group(
        "tx",
        pa.table({"customer_id": [1, 2], "ts": [day(1), day(1)], "amount": [1.0, 2.0]}),
        primary_key="customer_id",
        event_time="ts",
    )
    with pytest.raises(NotOnline):
        ostore.get_feature_vector(["amount"], {"customer_id": 1})
    ostore.set_online("tx")
    assert ostore.get_feature_vector(["amount"], {"customer_id": 2}) == [2.0]
    assert ostore.check_consistency("tx").ok
    # SQL toggles go through the same path
    ostore.sql("ALTER FEATURE GROUP tx SET OFFLINE")
    with pytest.raises(NotOnline):
        ostore.get_feature_vector(["amount"], {"customer_id": 1})
    fg.insert(pa.table({"customer_id": [2, 3], "ts": [day(2), day(2)], "amount": [20.0, 30.0]}))
    ostore.sql("ALTER FEATURE GROUP tx SET ONLINE")
    assert ostore.get_feature_vectors(["amount"], {"customer_id": [1, 2, 3]}).column(
        "amount"
    ).to_pylist() == [1.0, 20.0, 30.0]
    assert ostore.check_consistency("tx").ok


def _corrupt(ostore: fsql.Store, name: str) -> None:
    """Write wrong online rows straight into the backend: a changed value
    with a newer version (so no normal write would fix it), a deleted row,
    and a row for a key the offline store does not have."""
    service = ostore.online
    fg = ostore.catalog.feature_group(ostore.project, name)
    codec = service.codec(fg)
    backend = service.backend
    rows = {k: (ver, v) for k, ver, v in backend.scan(codec.table)}
    k1 = codec.key_string(1)
    _ver, v = rows[k1]
    values = json.loads(v)
    values[codec.value_names.index("amount")] = -999.0
    bad = json.dumps(values)
    far = ver_of(2**62, 10**9)  # an event time far in the future
    backend.write(codec.table, [(k1, far, bad)], codec)
    kept = [(k, ver, v) for k, (ver, v) in rows.items() if k not in (k1, codec.key_string(2))]
    kept.append((k1, far, bad))
    kept.append((codec.key_string(424242), far, v))
    backend.replace(codec.table, kept, codec)


def test_check_consistency_catches_corruption_and_materialize_repairs(ostore: fsql.Store) -> None:
    make_groups(ostore)
    report = ostore.check_consistency("tx")
    assert report.ok and report.checked == 5 and report.online_rows == 5
    _corrupt(ostore, "tx")
    assert ostore.get_feature_vector(["amount"], {"customer_id": 1}) == [-999.0]
    report = ostore.check_consistency("tx")
    assert not report.ok
    problems = dict(
        zip(
            [fsql_key for fsql_key in report.mismatches.column("key").to_pylist()],
            report.mismatches.column("problem").to_pylist(),
            strict=True,
        )
    )
    assert problems == {"[1]": "different", "[2]": "missing", "[424242]": "unexpected"}
    assert report.summary()["mismatches"] == 3
    # a normal commit does not hide the corruption (its version is "newer")
    ostore.get_feature_group("tx").insert(
        pa.table(
            {
                "customer_id": [1],
                "ts": [day(2)],
                "amount": [100.0],
                "count_7d": [1],
                "channel": ["app"],
            }
        )
    )
    assert ostore.get_feature_vector(["amount"], {"customer_id": 1}) == [-999.0]
    result = ostore.materialize("tx")
    assert result["rows"] == 5 and result["mode"] == "full"
    assert ostore.check_consistency("tx").ok
    assert ostore.get_feature_vector(["amount", "channel"], {"customer_id": 1}) == [100.0, "app"]
    assert ostore.get_feature_vector(["amount"], {"customer_id": 2}) == [3.0]
    assert ostore.get_feature_vector(["amount"], {"customer_id": 424242}) == [None]


def test_materialize_since_repairs_recent_keys_only(ostore: fsql.Store) -> None:
    make_groups(ostore)
    fg = ostore.get_feature_group("tx")
    mid = datetime.now(UTC)
    fg.insert(
        pa.table(
            {
                "customer_id": [3],
                "ts": [day(3)],
                "amount": [33.0],
                "count_7d": [3],
                "channel": ["x"],
            }
        )
    )
    service = ostore.online
    codec = service.codec(ostore.catalog.feature_group(ostore.project, "tx"))
    service.backend.replace(codec.table, [], codec)  # lose everything online
    result = ostore.materialize("tx", since=mid)
    assert result["mode"] == "since" and result["rows"] == 1
    assert ostore.get_feature_vectors(["amount"], {"customer_id": [1, 3]}).column(
        "amount"
    ).to_pylist() == [None, 33.0]
    assert ostore.check_consistency("tx").summary()["by_problem"] == {"missing": 4}
    ostore.materialize("tx")
    assert ostore.check_consistency("tx").ok


def test_rows_survive_reopen(backend: str, prefix: str, store_path) -> None:  # type: ignore[no-untyped-def]
    from online_helpers import cleanup, online_url  # type: ignore[import-not-found]

    url = online_url(backend, prefix)
    try:
        with fsql.connect(store_path, online=url) as s:
            make_groups(s)
        with fsql.connect(store_path) as s:  # the online setting is remembered
            assert s.online.warm() == 2
            assert s.get_feature_vector(["amount", "age"], {"customer_id": 4}) == [6.0, 24]
            assert s.check_consistency("profile").ok
            s.drop_feature_group(s.catalog.feature_group(s.project, "profile"))
            codec_table = "default__profile__v1"
            assert list(s.online.backend.scan(codec_table)) == []
    finally:
        cleanup(backend, prefix)


# --------------------------------------------------------------------------
# SQL


def test_select_features_key_lookup_is_served_online(ostore: fsql.Store) -> None:
    make_groups(ostore)
    out = ostore.sql("SELECT FEATURES amount, age WHERE customer_id = 2")
    assert out.to_pylist() == [{"customer_id": 2, "amount": 3.0, "age": 22}]
    out = ostore.sql("SELECT FEATURES amount, country WHERE customer_id IN (3, 1, 404)")
    assert sorted(out.to_pylist(), key=lambda r: r["customer_id"]) == [
        {"customer_id": 1, "amount": 1.5, "country": "DE"},
        {"customer_id": 3, "amount": 4.5, "country": "DE"},
    ]
    # the answer comes from the online store: a corrupted online row shows
    _corrupt(ostore, "tx")
    out = ostore.sql("SELECT FEATURES amount, age WHERE customer_id = 1")
    assert out.to_pylist() == [{"customer_id": 1, "amount": -999.0, "age": 21}]
    # while a query that is not a key lookup reads the offline store
    out = ostore.sql("SELECT FEATURES amount WHERE customer_id = 1 ORDER BY amount")
    assert out.column("amount").to_pylist() == [1.5]
    # parameters bind as literals and still hit the online store
    out = ostore.sql("SELECT FEATURES amount WHERE customer_id = $1", params=[1])
    assert out.column("amount").to_pylist() == [-999.0]


def test_sql_ddl_online_group(ostore: fsql.Store) -> None:
    ostore.sql(
        "CREATE FEATURE GROUP trips (driver_id BIGINT, event_ts TIMESTAMP, "
        "trips_today INTEGER, rating DOUBLE PRECISION) PRIMARY KEY (driver_id) "
        "EVENT TIME event_ts ONLINE"
    )
    ostore.sql(
        "INSERT INTO trips VALUES (7, '2024-01-01 10:00:00', 3, 4.5), "
        "(8, '2024-01-01 10:00:00', 1, 3.0)"
    )
    ostore.sql("INSERT INTO trips VALUES (7, '2024-01-01 09:00:00', 99, 0.0)")  # older
    ostore.sql("INSERT INTO trips VALUES (7, '2024-01-01 11:00:00', 4, 4.6)")
    assert ostore.get_feature_vector(["trips_today", "rating"], {"driver_id": 7}) == [4, 4.6]
    out = ostore.sql("SELECT FEATURES trips_today, rating WHERE driver_id IN (7, 8)")
    assert sorted(out.to_pylist(), key=lambda r: r["driver_id"]) == [
        {"driver_id": 7, "trips_today": 4, "rating": 4.6},
        {"driver_id": 8, "trips_today": 1, "rating": 3.0},
    ]
    assert ostore.check_consistency("trips").ok


def test_lookup_statements_are_planned_once(ostore: fsql.Store) -> None:
    make_groups(ostore)
    text = "SELECT FEATURES amount, age WHERE customer_id = $1"
    first = ostore.sql(text, params=[2])
    assert first.to_pylist() == [{"customer_id": 2, "amount": 3.0, "age": 22}]
    cached = ostore.online._statements[text]
    assert isinstance(cached, LookupTemplate)  # a key lookup, not "run it normally"
    assert ostore.sql(text, params=[3]).to_pylist() == [
        {"customer_id": 3, "amount": 4.5, "age": 23}
    ]
    assert ostore.online._statements[text] is cached  # not planned again
    assert ostore.sql(text, params=[404]).num_rows == 0
    assert ostore.sql(text, params=[None]).num_rows == 0  # as offline: k = NULL matches nothing
    batch = ostore.sql("SELECT FEATURES age WHERE customer_id IN ($1, $2, 5)", params=[1, 1])
    assert batch.to_pylist() == [{"customer_id": 1, "age": 21}, {"customer_id": 5, "age": 25}]
    # a mistyped parameter is not answered from the cache: the executor reports it
    with pytest.raises(FsqlError):
        ostore.sql(text, params=["x"])
    # a catalog change (a new version, an online toggle) drops the cached plans
    ostore.set_online("profile", False)
    assert text not in ostore.online._statements
    assert ostore.sql(text, params=[2]).to_pylist() == [
        {"customer_id": 2, "amount": 3.0, "age": 22}
    ]
    assert ostore.online._statements[text] is not cached


# --------------------------------------------------------------------------
# an online server going away mid-commit


@pytest.fixture
def break_server(backend: str):  # type: ignore[no-untyped-def]
    """A function that makes the online server fail the next operation, and
    a function that brings it back."""
    from online_helpers import start_redis, stop_redis  # type: ignore[import-not-found]

    state = {"stopped": False}

    def cut(store: fsql.Store) -> None:
        be = store.online.backend
        if backend == "redis":
            stop_redis()
            state["stopped"] = True
        elif backend == "postgres":
            import psycopg

            pid = be.backend_pid()  # type: ignore[attr-defined]
            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as c:
                c.execute("SELECT pg_terminate_backend(%s)", (pid,))
        elif backend == "mariadb":
            import pymysql

            cid = be.connection_id()  # type: ignore[attr-defined]
            c = pymysql.connect(host="127.0.0.1", user="root", password="", database="test")
            try:
                with c.cursor() as cur:
                    cur.execute("KILL %s", (cid,))
            finally:
                c.close()

    def restore() -> None:
        if state["stopped"]:
            start_redis()
            state["stopped"] = False

    try:
        yield cut, restore
    finally:
        restore()


@pytest.mark.parametrize("backend", ["postgres", "mariadb", "redis"], indirect=True)
def test_server_down_mid_commit_is_reported_and_repaired(
    ostore: fsql.Store, backend: str, break_server
) -> None:  # type: ignore[no-untyped-def]
    cut, restore = break_server
    make_groups(ostore)
    fg = ostore.get_feature_group("tx")
    cut(ostore)
    new = pa.table(
        {
            "customer_id": [1, 9],
            "ts": [day(4), day(4)],
            "amount": [10.0, 90.0],
            "count_7d": [1, 9],
            "channel": ["a", "b"],
        }
    )
    with pytest.raises(OnlineStoreUnavailable) as e:
        fg.insert(new)
    assert e.value.sqlstate == "08006"
    assert "stored offline" in e.value.message and "materialize" in (e.value.hint or "")
    # the commit is durable offline
    offline = fg.read()
    assert 9 in offline.column("customer_id").to_pylist()
    restore()
    # the online store missed it, and the check says so
    state = ostore.online.state(ostore.catalog.feature_group(ostore.project, "tx"))
    assert state is not None and state.status == "stale"
    report = ostore.check_consistency("tx")
    assert not report.ok
    if backend == "redis":
        # the local Redis runs without persistence: a restart loses every row
        assert report.summary()["by_problem"] == {"missing": 6}
    else:
        assert report.summary()["by_problem"] == {"different": 1, "missing": 1}
    assert report.summary()["status"] == "stale"
    ostore.materialize("tx")
    assert ostore.check_consistency("tx").ok
    assert ostore.get_feature_vector(["amount"], {"customer_id": 9}) == [90.0]
    # and the next commits apply normally again
    fg.insert(
        pa.table(
            {
                "customer_id": [9],
                "ts": [day(5)],
                "amount": [91.0],
                "count_7d": [1],
                "channel": ["c"],
            }
        )
    )
    assert ostore.get_feature_vector(["amount"], {"customer_id": 9}) == [91.0]


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_next_commit_repairs_a_stale_group(ostore: fsql.Store, break_server) -> None:  # type: ignore[no-untyped-def]
    cut, restore = break_server
    make_groups(ostore)
    fg = ostore.get_feature_group("tx")
    cut(ostore)
    with pytest.raises(OnlineStoreUnavailable):
        fg.insert(
            pa.table(
                {
                    "customer_id": [1],
                    "ts": [day(4)],
                    "amount": [10.0],
                    "count_7d": [1],
                    "channel": ["a"],
                }
            )
        )
    restore()
    fg.insert(
        pa.table(
            {
                "customer_id": [2],
                "ts": [day(4)],
                "amount": [20.0],
                "count_7d": [2],
                "channel": ["b"],
            }
        )
    )
    assert ostore.get_feature_vector(["amount"], {"customer_id": 1}) == [10.0]
    assert ostore.check_consistency("tx").ok


# --------------------------------------------------------------------------
# against a brute-force oracle


def test_random_commits_match_a_brute_force_oracle(ostore: fsql.Store) -> None:
    import random

    rnd = random.Random(1234)
    fg = ostore.create_feature_group(
        "ev",
        schema={"k": "bigint", "ts": "timestamp", "x": "bigint"},
        primary_key="k",
        event_time="ts",
        online=True,
    )
    oracle: dict[int, tuple[int, int, int]] = {}  # k -> (day, commit order, x)
    for commit in range(8):
        keys = rnd.sample(range(12), rnd.randint(1, 8))
        rows = [(k, rnd.randint(0, 4), rnd.randint(0, 10**6)) for k in keys]
        fg.insert(
            pa.table(
                {
                    "k": [r[0] for r in rows],
                    "ts": [day(r[1]) for r in rows],
                    "x": [r[2] for r in rows],
                }
            )
        )
        for k, d, x in rows:
            if k not in oracle or (d, commit) >= oracle[k][:2]:
                oracle[k] = (d, commit, x)
    got = ostore.get_feature_vectors(["x", "ts"], {"k": list(range(14))})
    expected_x = [oracle[k][2] if k in oracle else None for k in range(14)]
    expected_ts = [day(oracle[k][0]) if k in oracle else None for k in range(14)]
    assert got.column("x").to_pylist() == expected_x
    assert got.column("ts").to_pylist() == expected_ts
    assert ostore.check_consistency("ev").ok


def test_concurrent_lookups_during_commits(ostore: fsql.Store) -> None:
    import threading

    make_groups(ostore, n=50)
    fg = ostore.get_feature_group("tx")
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                v = ostore.get_feature_vector(["amount", "age"], {"customer_id": 7})
                assert v[1] == 27 and v[0] in (10.5, 1000.0, 2000.0)
                b = ostore.get_feature_vectors(["count_7d"], {"customer_id": [1, 2, 3]})
                assert b.num_rows == 3
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i, amount in enumerate((1000.0, 2000.0)):
            fg.insert(
                pa.table(
                    {
                        "customer_id": [7],
                        "ts": [day(2 + i)],
                        "amount": [amount],
                        "count_7d": [i],
                        "channel": ["x"],
                    }
                )
            )
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert ostore.get_feature_vector(["amount"], {"customer_id": 7}) == [2000.0]
    assert ostore.check_consistency("tx").ok


def test_batch_reads_stay_current_across_many_commits(ostore: fsql.Store) -> None:
    """Batch lookups after every commit (the embedded store appends to its
    columnar copy, compacts and rebuilds it) agree with single lookups."""
    fg = ostore.create_feature_group(
        "c",
        pa.table({"k": [0, 1, 2], "ts": [day(0)] * 3, "x": [0.0, 1.0, 2.0], "s": ["a", "b", "c"]}),
        primary_key="k",
        event_time="ts",
        online=True,
    )
    expected = {0: (0.0, "a"), 1: (1.0, "b"), 2: (2.0, "c")}
    for i in range(1, 70):
        k = i % 5
        fg.insert(pa.table({"k": [k], "ts": [day(i)], "x": [float(i)], "s": [f"v{i}"]}))
        expected[k] = (float(i), f"v{i}")
        if i == 35:
            ostore.materialize("c")
        batch = ostore.get_feature_vectors(["x", "s"], {"k": [0, 1, 2, 3, 4, 5]})
        assert batch.column("x").to_pylist() == [
            expected[k][0] if k in expected else None for k in range(6)
        ]
        assert batch.column("s").to_pylist() == [
            expected[k][1] if k in expected else None for k in range(6)
        ]
    assert ostore.get_feature_vector(["x", "s"], {"k": 3}) == [68.0, "v68"]
