"""Every FSQL statement runs on the embedded store, and plain SQL over feature
groups is transpiled to ClickHouse and runs."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fsql.errors import FsqlError


def d(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, day, hour)


@pytest.fixture
def fraud(store):
    store.sql(
        "CREATE FEATURE GROUP transactions (customer_id BIGINT, event_ts TIMESTAMP, "
        "amount_sum_7d DOUBLE PRECISION, tx_count_7d INT) PRIMARY KEY (customer_id) "
        "EVENT TIME event_ts DESCRIPTION 'rolling transaction aggregates for credit risk'"
    )
    store.sql(
        "INSERT INTO transactions VALUES (1, '2024-01-01', 10.0, 1), (1, '2024-01-05', 20.0, 2),"
        " (2, '2024-01-03', 5.5, 1)"
    )
    store.sql(
        "CREATE FEATURE GROUP profile (customer_id BIGINT, updated_at TIMESTAMP, age INT, "
        "country TEXT) PRIMARY KEY (customer_id) EVENT TIME updated_at"
    )
    store.sql("INSERT INTO profile VALUES (1, '2023-06-01', 30, 'DE'), (2, '2024-01-04', 41, 'FR')")
    store.sql(
        "CREATE FEATURE GROUP labels (customer_id BIGINT, event_ts TIMESTAMP, label INT) "
        "PRIMARY KEY (customer_id) EVENT TIME event_ts"
    )
    store.sql(
        "INSERT INTO labels VALUES (1, '2024-01-02', 0), (2, '2024-01-03 12:00:00', 1), "
        "(1, '2024-01-09', 1)"
    )
    return store


def rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


def test_latest_values(fraud):
    out = rows(fraud.sql("SELECT FEATURES amount_sum_7d, age ORDER BY customer_id"))
    assert out == [
        {"customer_id": 1, "amount_sum_7d": 20.0, "age": 30},
        {"customer_id": 2, "amount_sum_7d": 5.5, "age": 41},
    ]


def test_as_of_timestamp(fraud):
    out = rows(
        fraud.sql(
            "SELECT FEATURES transactions.*, profile.age "
            "AS OF TIMESTAMP '2024-01-03 12:00:00' ORDER BY customer_id"
        )
    )
    assert out == [
        {"customer_id": 1, "amount_sum_7d": 10.0, "tx_count_7d": 1, "age": 30},
        {"customer_id": 2, "amount_sum_7d": 5.5, "tx_count_7d": 1, "age": None},
    ]


def test_point_in_time_join_with_feature_group_spine(fraud):
    out = rows(
        fraud.sql(
            "SELECT FEATURES amount_sum_7d, age, labels.label FROM labels AS OF labels.event_ts"
        )
    )
    assert [(r["customer_id"], r["event_ts"], r["amount_sum_7d"], r["age"]) for r in out] == [
        (1, d(2), 10.0, 30),
        (1, d(9), 20.0, 30),
        (2, d(3, 12), 5.5, None),
    ]
    assert [r["label"] for r in out] == [0, 1, 1]


def test_spine_duplicates_and_early_rows_from_python(fraud):
    spine = pa.table(
        {
            "customer_id": [2, 1, 1, 3, 1],
            "ts": [d(4), d(1), d(1), d(9), dt.datetime(2023, 1, 1)],
        }
    )
    out = fraud.get_features(["amount_sum_7d", "profile.age"], spine=spine, as_of="ts")
    assert out.column("customer_id").to_pylist() == [2, 1, 1, 3, 1]  # one row each, in order
    assert out.column("amount_sum_7d").to_pylist() == [5.5, 10.0, 10.0, None, None]
    assert out.column("age").to_pylist() == [41, 30, 30, None, None]


def test_subquery_and_file_spines(fraud, tmp_path):
    sub = rows(
        fraud.sql(
            "SELECT FEATURES amount_sum_7d FROM (SELECT 1 AS customer_id, "
            "TIMESTAMP '2024-01-06 00:00:00' AS ts) s AS OF s.ts"
        )
    )
    assert sub == [{"customer_id": 1, "ts": d(6), "amount_sum_7d": 20.0}]
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"customer_id": [2, 1], "ts": [d(5), d(2)]}), path)
    out = fraud.sql(f"SELECT FEATURES amount_sum_7d FROM read_parquet('{path}') f AS OF f.ts")
    assert sorted(
        zip(
            out.column("customer_id").to_pylist(),
            out.column("amount_sum_7d").to_pylist(),
            strict=True,
        )
    ) == [
        (1, 10.0),
        (2, 5.5),
    ]


def test_where_order_limit_on_result(fraud):
    out = fraud.sql(
        "SELECT FEATURES amount_sum_7d FROM labels l AS OF l.event_ts "
        "WHERE l.customer_id = 1 ORDER BY event_ts DESC LIMIT 1"
    )
    assert rows(out) == [{"customer_id": 1, "event_ts": d(9), "label": 1, "amount_sum_7d": 20.0}]


def test_key_lookup_and_parameters(fraud):
    assert rows(fraud.sql("SELECT FEATURES amount_sum_7d, age WHERE customer_id = 2")) == [
        {"customer_id": 2, "amount_sum_7d": 5.5, "age": 41}
    ]
    got = fraud.sql("SELECT FEATURES amount_sum_7d WHERE customer_id = $1", [1])
    assert got.column("amount_sum_7d").to_pylist() == [20.0]
    batch = fraud.sql("SELECT FEATURES age WHERE customer_id IN (1, 2, 7) ORDER BY customer_id")
    assert batch.column("age").to_pylist() == [30, 41]


def test_versions_are_tables_and_features(fraud):
    fraud.create_feature_group(
        "transactions",
        pa.table({"customer_id": [1], "event_ts": [d(1)], "amount_sum_7d": [1.0], "flag": [True]}),
        primary_key="customer_id",
        event_time="event_ts",
        version=2,
    )
    v1 = fraud.sql("SELECT FEATURES transactions_v1.amount_sum_7d WHERE customer_id = 1")
    assert v1.column("amount_sum_7d").to_pylist() == [20.0]
    latest = fraud.sql("SELECT count(*) AS n FROM transactions")
    assert latest.column("n").to_pylist() == [1]
    assert fraud.sql("SELECT count(*) AS n FROM transactions_v1").column("n").to_pylist() == [3]


def test_plain_sql_joins_aggregates_windows_ctes(fraud):
    out = fraud.sql(
        """
        WITH t AS (
            SELECT customer_id, amount_sum_7d,
                   sum(amount_sum_7d) OVER (PARTITION BY customer_id ORDER BY event_ts) AS running
            FROM transactions
        )
        SELECT t.customer_id, max(t.running) AS total, min(p.age) AS age
        FROM t JOIN profile p ON p.customer_id = t.customer_id
        GROUP BY t.customer_id ORDER BY t.customer_id
        """
    )
    assert rows(out) == [
        {"customer_id": 1, "total": 30.0, "age": 30},
        {"customer_id": 2, "total": 5.5, "age": 41},
    ]


def test_unnamed_result_columns_get_postgres_names(fraud):
    out = fraud.sql(
        "SELECT customer_id, count(*), max(amount_sum_7d), 1 + 1, "
        "rank() OVER (ORDER BY customer_id), string_agg(CAST(tx_count_7d AS TEXT), ','), "
        "sum(tx_count_7d) FILTER (WHERE tx_count_7d > 1), "
        "CASE WHEN customer_id > 1 THEN 1 END FROM transactions GROUP BY customer_id"
    )
    assert out.column_names == [
        "customer_id", "count", "max", "?column?", "rank", "string_agg", "sum", "case"
    ]  # fmt: skip


def test_insert_select_is_one_commit(fraud):
    fraud.sql(
        "CREATE FEATURE GROUP doubled (customer_id BIGINT, event_ts TIMESTAMP, x DOUBLE PRECISION) "
        "PRIMARY KEY (customer_id) EVENT TIME event_ts"
    )
    fraud.sql(
        "INSERT INTO doubled SELECT customer_id, event_ts, amount_sum_7d * 2 FROM transactions"
    )
    handle = fraud.get_feature_group("doubled")
    assert len(handle.commits()) == 1
    assert sorted(handle.read().column("x").to_pylist()) == [11.0, 20.0, 40.0]


def test_create_as_select(fraud):
    fraud.sql(
        "CREATE FEATURE GROUP spend PRIMARY KEY (customer_id) EVENT TIME event_ts AS "
        "SELECT customer_id, event_ts, amount_sum_7d / tx_count_7d AS avg_amount FROM transactions"
    )
    fg = fraud.get_feature_group("spend")
    assert [f.name for f in fg.features] == ["customer_id", "event_ts", "avg_amount"]
    assert fg.read().num_rows == 3


def test_discovery_statements(fraud):
    groups = fraud.sql("SHOW FEATURE GROUPS").column("name").to_pylist()
    assert groups == ["labels", "profile", "transactions"]
    feats = fraud.sql("SHOW FEATURES FROM transactions LIKE 'amount%'")
    assert feats.column("feature").to_pylist() == ["amount_sum_7d"]
    hits = fraud.sql("SEARCH FEATURES 'credit'")
    assert "transactions" in hits.column("feature_group").to_pylist()
    fraud.sql("ALTER FEATURE GROUP transactions SET METADATA ('owner' = 'risk', 'tier' = 'gold')")
    desc = fraud.sql("DESCRIBE FEATURE GROUP transactions")
    meta = json.loads(desc.schema.metadata[b"metadata"])
    assert meta == {"owner": "risk", "tier": "gold"}
    assert desc.column("role").to_pylist()[:2] == ["primary key", "event time"]
    # metadata values are searchable: 'gold' appears only there
    gold = fraud.sql("SEARCH FEATURES 'gold'")
    assert set(gold.column("feature_group").to_pylist()) == {"transactions"}
    fraud.sql("ALTER FEATURE GROUP transactions UNSET METADATA ('tier')")
    assert fraud.get_feature_group("transactions").get_metadata() == {"owner": "risk"}


def test_explain_shows_engine_sql_with_quoted_identifiers(fraud):
    plan = "\n".join(
        fraud.sql("EXPLAIN SELECT FEATURES amount_sum_7d FROM labels AS OF labels.event_ts")
        .column(0)
        .to_pylist()
    )
    assert "ASOF JOIN" in plan
    assert '"fsql_default"."transactions_v1"' in plan
    assert "join_use_nulls = 1" in plan


def test_drop_feature_group(fraud):
    fraud.sql("DROP FEATURE GROUP profile")
    assert "profile" not in fraud.sql("SHOW FEATURE GROUPS").column("name").to_pylist()
    with pytest.raises(FsqlError) as info:
        fraud.sql("SELECT FEATURES age")
    assert info.value.sqlstate == "42703"
    fraud.sql("DROP FEATURE GROUP IF EXISTS profile")


def test_system_time_between_returns_changes(fraud):
    handle = fraud.get_feature_group("transactions")
    before = handle.commits()[-1].commit_time_us
    fraud.sql("INSERT INTO transactions VALUES (2, '2024-01-03', 6.5, 2)")
    stamp = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=before)
    changes = fraud.sql(
        "SELECT customer_id, amount_sum_7d FROM transactions FOR SYSTEM_TIME BETWEEN "
        f"TIMESTAMP '{stamp.isoformat(sep=' ')}' AND now()"
    )
    assert rows(changes) == [{"customer_id": 2, "amount_sum_7d": 6.5}]
    # the correction superseded the old row for reads of the present
    now = fraud.sql("SELECT FEATURES amount_sum_7d WHERE customer_id = 2")
    assert now.column("amount_sum_7d").to_pylist() == [6.5]


# errors --------------------------------------------------------------------


def error_of(store, text) -> FsqlError:
    with pytest.raises(FsqlError) as info:
        store.sql(text)
    return info.value


def test_ambiguous_feature_lists_both(fraud):
    fraud.sql(
        "CREATE FEATURE GROUP other (customer_id BIGINT, ts TIMESTAMP, age INT) "
        "PRIMARY KEY (customer_id) EVENT TIME ts"
    )
    text = "SELECT FEATURES amount_sum_7d, age"
    err = error_of(fraud, text)
    assert err.sqlstate == "42702"
    assert "other.age" in err.message and "profile.age" in err.message
    assert err.position == text.index("age") + 1


def test_unknown_feature_and_group(fraud):
    text = "SELECT FEATURES amount_sum_7x"
    err = error_of(fraud, text)
    assert err.sqlstate == "42703"
    assert err.position == text.index("amount_sum_7x") + 1
    assert "amount_sum_7d" in (err.hint or "")
    err = error_of(fraud, "SELECT FEATURES transaction.amount_sum_7d")
    assert err.sqlstate == "42P01"
    assert "transactions" in (err.hint or "")
    err = error_of(fraud, "SELECT * FROM profil")
    assert err.sqlstate == "42P01" and "profile" in (err.hint or "")


def test_no_join_path(fraud):
    fraud.sql(
        "CREATE FEATURE GROUP merchants (merchant_id BIGINT, ts TIMESTAMP, risk DOUBLE PRECISION) "
        "PRIMARY KEY (merchant_id) EVENT TIME ts"
    )
    err = error_of(fraud, "SELECT FEATURES amount_sum_7d, risk")
    assert err.sqlstate == "42P10"
    assert "merchants" in err.message
    err = error_of(fraud, "SELECT FEATURES risk FROM labels AS OF labels.event_ts")
    assert err.sqlstate == "42P10"


def test_bad_times_and_spine_time(fraud):
    err = error_of(fraud, "SELECT FEATURES age AS OF TIMESTAMP 'yesterday-ish'")
    assert err.sqlstate == "22007"
    err = error_of(fraud, "SELECT FEATURES age FROM labels AS OF labels.nope")
    assert err.sqlstate == "42703"


def test_insert_errors_name_columns(fraud):
    err = error_of(
        fraud, "INSERT INTO profile (customer_id, updated_at, agee) VALUES (1, now(), 3)"
    )
    assert err.sqlstate == "42703" and "agee" in err.message
    err = error_of(fraud, "INSERT INTO profile VALUES (1, now())")
    assert err.sqlstate == "42601"


def test_bytea_features_come_back_as_binary(store):
    data = pa.table(
        {
            "id": [1, 2],
            "ts": [d(1), d(2)],
            "payload": pa.array([b"\x00\x01\xff", b"ab"], pa.binary()),
        }
    )
    fg = store.create_feature_group("blobs", data, primary_key="id", event_time="ts")
    assert fg.read().schema.field("payload").type == pa.binary()
    plain = store.sql("SELECT id, payload, substring(payload, 3, 1) AS tail FROM blobs ORDER BY id")
    assert plain.column("payload").to_pylist() == [b"\x00\x01\xff", b"ab"]
    # a computed value that is not valid UTF-8 is binary too, never an invalid string
    assert plain.schema.field("tail").type == pa.binary()
    assert plain.column("tail").to_pylist() == [b"\xff", b""]
    feats = store.sql("SELECT FEATURES blobs.payload ORDER BY id")
    assert feats.schema.field("payload").type == pa.binary()
    assert feats.column("payload").to_pylist() == [b"\x00\x01\xff", b"ab"]


def test_plain_sql_resolves_columns_as_postgresql(fraud):
    """An unqualified column two joined groups have is 42702 (ClickHouse would
    quietly read the first table's), an unknown one 42703, both with the
    position of the name."""
    text = "SELECT customer_id FROM transactions t JOIN labels l ON t.customer_id = l.customer_id"
    with pytest.raises(FsqlError) as e:
        fraud.sql(text)
    assert e.value.sqlstate == "42702" and '"customer_id"' in e.value.message
    assert e.value.position == text.index("customer_id") + 1
    assert "l.customer_id" in (e.value.hint or "") and "t.customer_id" in (e.value.hint or "")
    # a USING column is one column
    got = fraud.sql(
        "SELECT customer_id, label FROM transactions JOIN labels USING (customer_id) "
        "WHERE customer_id = 2"
    )
    assert got.to_pylist() == [{"customer_id": 2, "label": 1}]
    text = "SELECT t.amount_sum_7 FROM transactions t"
    with pytest.raises(FsqlError) as e:
        fraud.sql(text)
    assert e.value.sqlstate == "42703" and e.value.position == text.index("t.amount") + 1
    assert "amount_sum_7d" in (e.value.hint or "")
    text = "SELECT * FROM transactions WHERE EXISTS (SELECT 1 FROM profile WHERE agee > 1)"
    with pytest.raises(FsqlError) as e:
        fraud.sql(text)
    assert e.value.sqlstate == "42703" and e.value.position == text.index("agee") + 1
    # correlated subqueries and select aliases still resolve
    got = fraud.sql(
        "SELECT amount_sum_7d AS a FROM transactions WHERE EXISTS "
        "(SELECT 1 FROM profile WHERE age > tx_count_7d) ORDER BY a"
    )
    assert got.column("a").to_pylist() == [5.5, 10.0, 20.0]


def test_select_features_naming_no_feature_is_a_syntax_error(fraud):
    text = "SELECT FEATURES FROM labels"
    with pytest.raises(FsqlError) as e:
        fraud.sql(text)
    assert e.value.sqlstate == "42601" and e.value.position == text.index("FROM") + 1
    assert "names no feature" in e.value.message


def test_key_lookup_values_convert_as_postgresql_compares_them(fraud):
    got = fraud.sql("SELECT FEATURES age WHERE customer_id IN (1, '2') ORDER BY customer_id")
    assert got.column("age").to_pylist() == [30, 41]
    for text, params in (
        ("SELECT FEATURES age WHERE customer_id = 'x'", None),
        ("SELECT FEATURES age WHERE customer_id = $1", ["x"]),
        ("SELECT FEATURES age WHERE customer_id IN (1, 'y')", None),
    ):
        with pytest.raises(FsqlError) as e:
            fraud.sql(text, params=params)
        assert e.value.sqlstate == "22P02" and "customer_id" in e.value.message


def test_where_on_one_qualified_boolean_column(store):
    store.sql(
        "CREATE FEATURE GROUP labels (customer_id BIGINT, ts TIMESTAMP, flag BOOLEAN) "
        "PRIMARY KEY (customer_id) EVENT TIME ts"
    )
    store.sql("INSERT INTO labels VALUES (1, '2024-01-01', true), (2, '2024-01-02', false)")
    store.sql(
        "CREATE FEATURE GROUP f (customer_id BIGINT, ts TIMESTAMP, x INT) "
        "PRIMARY KEY (customer_id) EVENT TIME ts"
    )
    store.sql("INSERT INTO f VALUES (1, '2023-12-31', 7), (2, '2023-12-31', 8)")
    got = store.sql("SELECT FEATURES f.x FROM labels AS OF labels.ts WHERE labels.flag")
    assert got.column("x").to_pylist() == [7]


def test_dates_before_1970_survive_casts(store):
    got = store.sql("SELECT CAST('1969-12-31' AS date) AS d, DATE '1900-05-01' AS e")
    assert got.to_pylist() == [{"d": dt.date(1969, 12, 31), "e": dt.date(1900, 5, 1)}]


def test_bytea_parameters_bind_the_exact_bytes(store):
    data = pa.table(
        {"id": [1, 2], "ts": [d(1), d(1)], "payload": pa.array([b"\x00\xff", b"ab"], pa.binary())}
    )
    store.create_feature_group("blobs", data, primary_key="id", event_time="ts")
    got = store.sql("SELECT id FROM blobs WHERE payload = $1", params=[b"\x00\xff"])
    assert got.column("id").to_pylist() == [1]


def test_json_features_are_marked_as_json(store):
    store.sql(
        "CREATE FEATURE GROUP docs (id BIGINT, ts TIMESTAMP, body JSON, note TEXT) "
        "PRIMARY KEY (id) EVENT TIME ts"
    )
    store.sql("""INSERT INTO docs VALUES (1, '2024-01-01', '{"a": 1}', 'x')""")
    for result in (
        store.sql("SELECT body, note FROM docs"),
        store.sql("SELECT FEATURES docs.body, docs.note"),
        store.get_feature_group("docs").read(),
    ):
        body, note = result.schema.field("body"), result.schema.field("note")
        assert (body.metadata or {}).get(b"fsql.type") == b"json"
        assert not (note.metadata or {}).get(b"fsql.type")
        assert json.loads(result.column("body")[0].as_py()) == {"a": 1}


def test_explain_of_ddl_and_insert_shows_engine_sql_and_changes_nothing(fraud):
    def plan(text: str) -> str:
        return "\n".join(fraud.sql("EXPLAIN " + text).column(0).to_pylist())

    before = fraud.sql("SELECT count(*) AS n FROM transactions").column("n").to_pylist()
    text = plan("INSERT INTO transactions VALUES (9, '2024-02-01', 1.0, 1)")
    assert 'ATTACH PARTITION tuple() FROM "fsql_default"."_staging_transactions_v1_N"' in text
    assert 'ALTER TABLE "fsql_default"."transactions_v1"' in text
    text = plan(
        "CREATE FEATURE GROUP doubled PRIMARY KEY (customer_id) EVENT TIME event_ts AS "
        "SELECT customer_id, event_ts, amount_sum_7d * 2 AS x FROM transactions"
    )
    assert 'CREATE TABLE IF NOT EXISTS "fsql_default"."doubled_v1"' in text
    assert '"x" Nullable(Float64)' in text and 'FROM "fsql_default"."transactions_v1"' in text
    assert 'DROP TABLE IF EXISTS "fsql_default"."labels_v1"' in plan("DROP FEATURE GROUP labels")
    after = fraud.sql("SELECT count(*) AS n FROM transactions").column("n").to_pylist()
    assert before == after
    assert sorted(g.name for g in fraud.feature_groups()) == ["labels", "profile", "transactions"]


def test_a_group_keyed_wider_than_the_base_outputs_its_extra_key(store):
    store.sql(
        "CREATE FEATURE GROUP cust (customer_id BIGINT, ts TIMESTAMP, age INT) "
        "PRIMARY KEY (customer_id) EVENT TIME ts"
    )
    store.sql(
        "CREATE FEATURE GROUP cm (customer_id BIGINT, merchant_id BIGINT, ts TIMESTAMP, "
        "spend DOUBLE PRECISION) PRIMARY KEY (customer_id, merchant_id) EVENT TIME ts"
    )
    store.sql("INSERT INTO cust VALUES (1, '2024-01-01', 30), (2, '2024-01-01', 40)")
    store.sql("INSERT INTO cm VALUES (1, 10, '2024-01-01', 5.0), (1, 11, '2024-01-01', 7.0)")
    got = store.sql("SELECT FEATURES age, spend ORDER BY customer_id, merchant_id")
    assert got.to_pylist() == [
        {"customer_id": 1, "merchant_id": 10, "age": 30, "spend": 5.0},
        {"customer_id": 1, "merchant_id": 11, "age": 30, "spend": 7.0},
        {"customer_id": 2, "merchant_id": None, "age": 40, "spend": None},
    ]


def test_generate_series(store):
    got = store.sql("SELECT * FROM generate_series(1, 10, 4)")
    assert got.column(0).to_pylist() == [1, 5, 9]
    assert store.sql("SELECT generate_series(1, 3)").column(0).to_pylist() == [1, 2, 3]


def test_unquoted_identifiers_fold_to_lower_case(store):
    store.sql(
        "CREATE FEATURE GROUP Cust (Customer_ID BIGINT, TS TIMESTAMP, Age INT) "
        "PRIMARY KEY (Customer_ID) EVENT TIME TS"
    )
    store.sql("INSERT INTO CUST VALUES (1, '2024-01-01', 30)")
    assert [g.name for g in store.feature_groups()] == ["cust"]
    assert store.sql("SELECT CUSTOMER_ID, AGE AS Years FROM cust").to_pylist() == [
        {"customer_id": 1, "years": 30}
    ]
    assert store.sql("SELECT FEATURES Age").column("age").to_pylist() == [30]
    # a name with capitals (from Python) is reached quoted, as in PostgreSQL
    store.create_feature_group(
        "Upper", pa.table({"K": [1], "ts": [d(1)], "Amount": [1.0]}), primary_key="K"
    )
    assert store.sql('SELECT "Amount" FROM "Upper"').column(0).to_pylist() == [1.0]
    with pytest.raises(FsqlError) as e:
        store.sql('SELECT Amount FROM "Upper"')
    assert e.value.sqlstate == "42703" and "'Amount'" in (e.value.hint or "")


def test_integers_divide_as_integers(fraud):
    got = fraud.sql("SELECT 7 / 2 AS a, -7 / 2 AS b, 7.0 / 2 AS c").to_pylist()
    assert got == [{"a": 3, "b": -3, "c": 3.5}]
    got = fraud.sql(
        "SELECT tx_count_7d / 2 AS half, amount_sum_7d / 2 AS amount_half, "
        "CAST(tx_count_7d AS DOUBLE PRECISION) / 2 AS exact "
        "FROM transactions ORDER BY customer_id, event_ts"
    ).to_pylist()
    assert [r["half"] for r in got] == [0, 1, 0]
    assert [r["amount_half"] for r in got] == [5.0, 10.0, 2.75]
    assert [r["exact"] for r in got] == [0.5, 1.0, 0.5]
    with pytest.raises(FsqlError) as e:
        fraud.sql("SELECT tx_count_7d / (tx_count_7d - 1) FROM transactions")
    assert e.value.sqlstate == "22012"
    # the engine session is fine after an error raised mid-result
    assert fraud.sql("SELECT count(*) AS n FROM transactions").column("n").to_pylist() == [3]
