"""The store from Python: feature groups, versions, commits, upserts, time
travel, metadata, search and the errors users meet first."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

import fsql
from fsql.errors import (
    DatatypeMismatch,
    DuplicateObject,
    FsqlError,
    InvalidParameter,
    StoreInUse,
    UndefinedColumn,
    UndefinedObject,
)

T0 = dt.datetime(2024, 1, 1)


def ts(day: int, hour: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(days=day, hours=hour)


def tx(ids: list[int], days: list[int], amounts: list[float | None]) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(ids, pa.int64()),
            "event_ts": pa.array([ts(d) for d in days], pa.timestamp("us")),
            "amount": pa.array(amounts, pa.float64()),
        }
    )


def make_fg(store: fsql.Store, name: str = "transactions", data: pa.Table | None = None):
    return store.create_feature_group(
        name,
        data if data is not None else tx([1, 2], [0, 0], [10.0, 20.0]),
        primary_key="customer_id",
        event_time="event_ts",
        description="card transactions",
        features={"amount": "amount in USD"},
    )


# create, insert, read --------------------------------------------------------


def test_create_records_schema_and_descriptions(store):
    fg = make_fg(store)
    assert (fg.name, fg.version) == ("transactions", 1)
    assert fg.primary_key == ["customer_id"]
    assert fg.event_time == "event_ts"
    assert fg.description == "card transactions"
    assert [(f.name, f.type) for f in fg.features] == [
        ("customer_id", "bigint"),
        ("event_ts", "timestamp"),
        ("amount", "double precision"),
    ]
    assert fg.features[2].description == "amount in USD"
    assert len(fg.commits()) == 1


def test_create_from_declared_schema_then_insert(store):
    fg = store.create_feature_group(
        "profiles",
        schema={"customer_id": "bigint", "updated_at": "timestamp", "age": "integer"},
        primary_key="customer_id",
        event_time="updated_at",
    )
    assert fg.read().num_rows == 0
    assert fg.commits() == []
    commit = fg.insert(
        pa.table(
            {
                "customer_id": [7],
                "updated_at": pa.array([T0], pa.timestamp("us")),
                "age": pa.array([41], pa.int64()),  # widened/narrowed to integer
            }
        )
    )
    assert commit.state == "committed" and commit.row_count == 1
    out = fg.read()
    assert out.schema.field("age").type == pa.int32()
    assert out.to_pylist() == [{"customer_id": 7, "updated_at": T0, "age": 41}]


def test_insert_appends_one_commit_each(store):
    fg = make_fg(store)
    c2 = fg.insert(tx([3], [1], [30.0]))
    c3 = fg.insert(tx([1], [2], [None]))
    commits = fg.commits()
    assert [c.id for c in commits][-2:] == [c2.id, c3.id]
    assert commits[0].commit_time_us < c2.commit_time_us < c3.commit_time_us
    rows = fg.read().to_pylist()
    assert rows == [
        {"customer_id": 1, "event_ts": ts(0), "amount": 10.0},
        {"customer_id": 1, "event_ts": ts(2), "amount": None},
        {"customer_id": 2, "event_ts": ts(0), "amount": 20.0},
        {"customer_id": 3, "event_ts": ts(1), "amount": 30.0},
    ]


def test_pandas_input(store):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"customer_id": [5, 6], "event_ts": [ts(0), ts(1)], "amount": [1.0, 2.5]})
    fg = make_fg(store, data=pa.Table.from_pandas(df, preserve_index=False))
    fg.insert(pd.DataFrame({"customer_id": [7], "event_ts": [ts(2)], "amount": [3.0]}))
    assert fg.read().column("customer_id").to_pylist() == [5, 6, 7]


def test_sql_over_feature_groups(store):
    make_fg(store, data=tx([1, 1, 2], [0, 1, 0], [10.0, 5.0, 20.0]))
    out = store.sql(
        "SELECT customer_id, sum(amount) AS total FROM transactions "
        "GROUP BY customer_id ORDER BY customer_id"
    )
    assert out.to_pylist() == [
        {"customer_id": 1, "total": 15.0},
        {"customer_id": 2, "total": 20.0},
    ]


# versions -----------------------------------------------------------------


def test_versions_and_latest(store):
    v1 = make_fg(store)
    v2 = store.create_feature_group(
        "transactions",
        pa.table(
            {
                "customer_id": [1],
                "event_ts": pa.array([ts(5)], pa.timestamp("us")),
                "amount": [1.0],
                "currency": ["EUR"],
            }
        ),
        primary_key="customer_id",
        event_time="event_ts",
        version=2,
    )
    assert (v1.version, v2.version) == (1, 2)
    latest = store.get_feature_group("transactions")
    assert latest.version == 2
    assert store.get_feature_group("transactions", "latest").version == 2
    old = store.get_feature_group("transactions", 1)
    assert old.read().num_rows == 2
    assert latest.read().column_names == ["customer_id", "event_ts", "amount", "currency"]
    # SQL: the bare name is the latest version, fg_vN a given one
    assert store.sql("SELECT count(*) AS n FROM transactions").column("n").to_pylist() == [1]
    assert store.sql("SELECT count(*) AS n FROM transactions_v1").column("n").to_pylist() == [2]
    with pytest.raises(UndefinedObject) as e:
        store.get_feature_group("transactions", 3)
    assert "no version 3" in e.value.message and "1, 2" in (e.value.hint or "")


def test_explicit_version_that_exists_is_duplicate(store):
    make_fg(store)
    with pytest.raises(DuplicateObject) as e:
        store.create_feature_group(
            "transactions",
            schema={"customer_id": "bigint", "event_ts": "timestamp"},
            primary_key="customer_id",
            event_time="event_ts",
            version=1,
        )
    assert e.value.sqlstate == "42P07"
    assert '"transactions" version 1 already exists' in e.value.message


def test_drop_removes_rows_and_catalog_entry(store):
    fg = make_fg(store)
    make_fg(store, "other")
    fg.drop()
    assert [g.name for g in store.feature_groups()] == ["other"]
    with pytest.raises(UndefinedObject):
        store.get_feature_group("transactions")
    offline = store.engine.query(
        "SELECT name FROM system.tables WHERE database = 'fsql_default' ORDER BY name"
    )
    assert offline.column("name").to_pylist() == ["other_v1"]
    # the name is free again, with fresh rows
    again = make_fg(store, data=tx([9], [0], [1.0]))
    assert again.version == 1
    assert again.read().column("customer_id").to_pylist() == [9]


def test_reopen_keeps_everything(store_path):
    with fsql.connect(store_path) as s:
        make_fg(s).add_metadata({"owner": "risk"})
    with fsql.connect(store_path) as s:
        fg = s.get_feature_group("transactions")
        assert fg.read().num_rows == 2
        assert fg.get_metadata() == {"owner": "risk"}
        assert len(fg.commits()) == 1


# upserts and time travel --------------------------------------------------


def test_upsert_supersedes_and_time_travel_reads_old_commit(store):
    fg = make_fg(store)
    first = fg.commits()[0]
    assert not fg.record.has_upserts
    second = fg.insert(tx([1, 3], [0, 0], [11.0, 30.0]))  # (1, day 0) again
    assert fg._refresh().has_upserts
    now = fg.read().to_pylist()
    assert now == [
        {"customer_id": 1, "event_ts": ts(0), "amount": 11.0},
        {"customer_id": 2, "event_ts": ts(0), "amount": 20.0},
        {"customer_id": 3, "event_ts": ts(0), "amount": 30.0},
    ]
    then = fg.read(system_time=first.commit_time_us).to_pylist()
    assert then == [
        {"customer_id": 1, "event_ts": ts(0), "amount": 10.0},
        {"customer_id": 2, "event_ts": ts(0), "amount": 20.0},
    ]
    # a datetime works too; before the first commit there is nothing
    as_dt = dt.datetime.fromtimestamp(second.commit_time_us / 1e6, dt.UTC)
    assert fg.read(system_time=as_dt).num_rows == 3
    assert fg.read(system_time=first.commit_time_us - 1).num_rows == 0
    # plain SQL sees one row per key and time
    n = store.sql("SELECT count(*) AS n FROM transactions WHERE customer_id = 1")
    assert n.column("n").to_pylist() == [1]


def test_new_event_time_is_not_an_upsert(store):
    fg = make_fg(store)
    fg.insert(tx([1], [1], [12.0]))
    assert not fg._refresh().has_upserts
    assert fg.read().num_rows == 3


def test_duplicate_key_inside_one_commit_is_rejected(store):
    fg = make_fg(store)
    with pytest.raises(FsqlError) as e:
        fg.insert(tx([4, 4], [3, 3], [1.0, 2.0]))
    assert e.value.sqlstate == "23505"
    assert "customer_id=4" in e.value.message
    assert fg.read().num_rows == 2
    assert len(fg.commits()) == 1


def test_duplicate_check_with_text_key(store):
    rows = pa.table(
        {
            "card": ["a", "b", "a"],
            "event_ts": pa.array([ts(0), ts(0), ts(0)], pa.timestamp("us")),
            "v": [1, 2, 3],
        }
    )
    with pytest.raises(FsqlError) as e:
        store.create_feature_group("cards", rows, primary_key="card", event_time="event_ts")
    assert e.value.sqlstate == "23505" and "card='a'" in e.value.message
    # a failed first commit leaves no feature group behind
    assert store.feature_groups() == []
    ok = store.create_feature_group(
        "cards", rows.slice(0, 2), primary_key="card", event_time="event_ts"
    )
    assert ok.read().column("card").to_pylist() == ["a", "b"]


# metadata and search ------------------------------------------------------


def test_custom_metadata(store):
    fg = make_fg(store)
    fg.add_metadata({"owner": "risk", "tier": "gold", "pii": "no"})
    assert fg.get_metadata() == {"owner": "risk", "pii": "no", "tier": "gold"}
    assert fg.get_metadata(["owner", "tier", "absent"]) == {"owner": "risk", "tier": "gold"}
    fg.add_metadata({"owner": "fraud"})  # overwrite one key
    assert fg.get_metadata(["owner"]) == {"owner": "fraud"}
    missing = fg.remove_metadata(["pii", "nope"])
    assert missing == ["nope"]
    assert fg.get_metadata() == {"owner": "fraud", "tier": "gold"}
    assert fg.describe()["metadata"] == {"owner": "fraud", "tier": "gold"}
    with pytest.raises(InvalidParameter):
        fg.add_metadata({"": "x"})


def test_keyword_search(store):
    make_fg(store)
    store.create_feature_group(
        "profiles",
        schema={"customer_id": "bigint", "updated_at": "timestamp", "credit_limit": "real"},
        primary_key="customer_id",
        event_time="updated_at",
        description="CRM profile",
        features={"credit_limit": "card credit limit"},
        metadata={"owner": "crm-team"},
    )
    hits = store.search("credit").to_pylist()
    assert {(h["kind"], h["feature_group"], h["feature"]) for h in hits} == {
        ("feature", "profiles", "credit_limit")
    }
    # descriptions, case-insensitively, and every word must match
    assert {h["feature_group"] for h in store.search("CARD").to_pylist()} == {
        "transactions",
        "profiles",
    }
    assert store.search("card credit").column("feature").to_pylist() == ["credit_limit"]
    # metadata values are searched too
    by_owner = store.search("crm-team").to_pylist()
    assert by_owner[0] == {
        "kind": "feature_group",
        "feature_group": "profiles",
        "version": 1,
        "feature": None,
        "type": None,
        "description": "CRM profile",
    }
    assert store.search("nothing-like-this").num_rows == 0


# errors -------------------------------------------------------------------


def test_unknown_feature_group_suggests_close_names(store):
    make_fg(store)
    with pytest.raises(UndefinedObject) as e:
        store.get_feature_group("transaction")
    assert e.value.sqlstate == "42P01"
    assert 'feature group "transaction" does not exist' in e.value.message
    assert "'transactions'" in (e.value.hint or "")
    with pytest.raises(UndefinedObject) as e:
        store.sql("SELECT * FROM transactionz")
    assert "transactions" in (e.value.hint or "")


def test_duplicate_name_is_an_error_and_a_version_makes_a_new_one(store):
    make_fg(store)
    with pytest.raises(DuplicateObject) as e:
        make_fg(store)
    assert e.value.sqlstate == "42P07" and '"transactions" already exists' in e.value.message
    assert "version=2" in (e.value.hint or "")
    with pytest.raises(DuplicateObject):
        store.sql(
            "CREATE FEATURE GROUP transactions (customer_id BIGINT, event_ts TIMESTAMP) "
            "PRIMARY KEY (customer_id) EVENT TIME event_ts"
        )
    assert [g.version for g in store.feature_groups()] == [1]
    v2 = store.create_feature_group(
        "transactions", tx([3], [0], [1.0]), primary_key="customer_id", version=2
    )
    assert v2.version == 2
    store.sql(
        "CREATE FEATURE GROUP transactions VERSION 3 (customer_id BIGINT, event_ts TIMESTAMP) "
        "PRIMARY KEY (customer_id) EVENT TIME event_ts"
    )
    assert store.get_feature_group("transactions").version == 3
    assert store.get_feature_group("transactions", 1).read().num_rows == 2


def test_bad_names_and_keys(store):
    data = tx([1], [0], [1.0])
    with pytest.raises(InvalidParameter) as e:
        store.create_feature_group("1bad", data, primary_key="customer_id")
    assert e.value.sqlstate == "42602"
    with pytest.raises(UndefinedColumn) as e:
        store.create_feature_group("g", data, primary_key="id", event_time="event_ts")
    assert 'primary key column "id"' in e.value.message
    assert "customer_id" in (e.value.hint or "")
    with pytest.raises(DatatypeMismatch) as e:
        store.create_feature_group("g", data, primary_key="customer_id", event_time="amount")
    assert 'event time column "amount" has type double precision' in e.value.message
    assert e.value.sqlstate == "42804"
    with pytest.raises(InvalidParameter):
        store.create_feature_group("g", primary_key="customer_id")  # no schema, no data
    assert store.feature_groups() == []


def test_second_process_gets_store_in_use(store, store_path):
    make_fg(store)
    config = (store_path / "fsql.json").read_text()
    script = textwrap.dedent(
        f"""
        import json, fsql
        try:
            fsql.connect({str(store_path)!r}, catalog="sqlite:////nonexistent/other.sqlite")
        except fsql.FsqlError as e:
            print(json.dumps({{"type": type(e).__name__, "sqlstate": e.sqlstate,
                              "message": e.message, "hint": e.hint}}))
        else:
            print("{{}}")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=store_path.parent,  # not the checkout: ./fsql would shadow the install
    )
    assert out.returncode == 0, out.stderr
    err = json.loads(out.stdout.strip().splitlines()[-1])
    assert err["type"] == StoreInUse.__name__
    assert err["sqlstate"] == "55006"
    assert "in use" in err["message"]
    assert "serve" in err["hint"]
    # the holder is unaffected, its settings too
    assert store.get_feature_group("transactions").read().num_rows == 2
    assert (store_path / "fsql.json").read_text() == config


def test_same_process_second_folder_is_refused_until_closed(store, tmp_path):
    with pytest.raises(StoreInUse):
        fsql.connect(tmp_path / "other")
    assert store.feature_groups() == []


def test_duplicate_columns_and_a_key_holding_the_event_time(store):
    text = "CREATE FEATURE GROUP x (k BIGINT, k INT) PRIMARY KEY (k)"
    with pytest.raises(FsqlError) as e:
        store.sql(text)
    assert e.value.sqlstate == "42701" and e.value.position == text.index("k INT") + 1
    # label groups are often keyed by (entity, time)
    store.sql(
        "CREATE FEATURE GROUP labels (customer_id BIGINT, ts TIMESTAMP, label BOOLEAN) "
        "PRIMARY KEY (customer_id, ts) EVENT TIME ts"
    )
    store.sql("INSERT INTO labels VALUES (1, '2024-01-01', true), (1, '2024-01-02', false)")
    got = store.sql("SELECT FEATURES labels.label WHERE customer_id = 1 ORDER BY ts")
    assert got.column("label").to_pylist() == [True, False]


def test_pandas_integer_columns_with_missing_values(store):
    import pandas as pd

    make_fg(store)
    fg = store.get_feature_group("transactions")
    # pandas stores an int column with a missing value as float64 (NaN)
    frame = pd.DataFrame(
        {
            "customer_id": [None, 6.0],
            "event_ts": [ts(1), ts(2)],
            "amount": [1.0, 2.0],
        }
    )
    with pytest.raises(FsqlError) as e:
        fg.insert(frame)
    assert e.value.sqlstate == "23502" and "customer_id (1 rows)" in e.value.message
    fg.insert(frame.dropna())
    assert 6 in fg.read().column("customer_id").to_pylist()
    with pytest.raises(FsqlError) as e:
        fg.insert(frame.assign(customer_id=[5.5, 6.0]))
    assert e.value.sqlstate == "42804"  # not a whole number: still mistyped
    with pytest.raises(DatatypeMismatch) as e:
        store.create_feature_group("k", frame, primary_key="customer_id", version=None)
    assert "Int64" in (e.value.hint or "")
