"""Connector statements, secrets and on-demand feature groups end to end
(against the real local PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import uuid

import pyarrow as pa
import pytest
from service_checks import require_service

from fsql.bind.sources import group_source
from fsql.errors import FsqlError

PG = "host '127.0.0.1', port '5432', database 'test', user 'postgres'"


@pytest.fixture
def pg_table():
    """A unique PostgreSQL table with three customers; dropped afterwards."""
    require_service("postgres")
    import psycopg

    name = f"od_t_{uuid.uuid4().hex[:10]}"
    conn = psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", autocommit=True)
    conn.execute(f"CREATE TABLE {name} (id bigint, age int, updated_at timestamp)")
    conn.execute(
        f"INSERT INTO {name} VALUES (1, 30, '2024-01-01'), (2, 40, '2024-01-02'), "
        "(3, 50, '2024-01-03')"
    )
    try:
        yield name, conn
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.close()


def test_connector_statements(store, pg_table, monkeypatch):
    t, _ = pg_table
    monkeypatch.setenv("FSQL_TEST_CRM_PW", "pw-never-shown-7f3a")
    store.sql(f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG}, password_env 'FSQL_TEST_CRM_PW')")
    out = store.sql("CREATE CONNECTOR IF NOT EXISTS crm TYPE postgres OPTIONS (database 'x')")
    assert out.column(0).to_pylist() == ["CONNECTOR crm EXISTS"]
    with pytest.raises(FsqlError) as e:
        store.sql(f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG})")
    assert e.value.sqlstate == "42P07"
    shown = store.sql("SHOW CONNECTORS").to_pylist()
    assert [r["name"] for r in shown] == ["crm"] and shown[0]["type"] == "postgres"
    assert "FSQL_TEST_CRM_PW" in shown[0]["options"]
    desc = dict(
        (r["property"], r["value"]) for r in store.sql("DESCRIBE CONNECTOR crm").to_pylist()
    )
    assert desc["option password_env"] == "FSQL_TEST_CRM_PW"
    assert desc["option host"] == "127.0.0.1"
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP profile CONNECTOR crm PRIMARY KEY (customer_id) "
        f"EVENT TIME updated_at DESCRIPTION 'from the CRM' METADATA ('owner' = 'crm-team') "
        f"AS SELECT id AS customer_id, age, updated_at FROM {t}"
    )
    assert store.sql("SHOW CONNECTORS LIKE 'cr%'").column("feature_groups").to_pylist() == [
        "profile"
    ]
    assert store.sql("SHOW CONNECTORS LIKE 'zz%'").num_rows == 0
    fg = store.get_feature_group("profile")
    assert fg.description == "from the CRM" and fg.get_metadata() == {"owner": "crm-team"}
    assert store.sql("SELECT FEATURES age WHERE customer_id = 2").column("age").to_pylist() == [40]
    with pytest.raises(FsqlError) as e:
        store.sql("DROP CONNECTOR crm")
    assert e.value.sqlstate == "2BP01" and "profile" in str(e.value)
    with pytest.raises(FsqlError) as e:
        fg.insert(pa.table({"customer_id": [1]}))
    assert e.value.sqlstate == "0A000"
    store.sql("DROP FEATURE GROUP profile")
    store.sql("DROP CONNECTOR crm")
    assert store.sql("SHOW CONNECTORS").num_rows == 0
    assert store.sql("DROP CONNECTOR IF EXISTS crm").column(0).to_pylist()[0].endswith("SKIPPING")
    with pytest.raises(FsqlError) as e:
        store.sql("DESCRIBE CONNECTOR crm")
    assert e.value.sqlstate == "42704"


def test_python_api(store, pg_table):
    t, _ = pg_table
    info = store.create_connector(
        "crm", "postgres", {"host": "127.0.0.1", "database": "test", "user": "postgres"}
    )
    assert info["type"] == "postgres" and info["options"]["port"] == "5432"
    fg = store.create_on_demand_feature_group(
        "profile",
        connector="crm",
        query=f"SELECT id AS customer_id, age, updated_at FROM {t}",
        primary_key=["customer_id"],
        event_time="updated_at",
        features={"age": "age in years"},
    )
    assert [f.description for f in fg.features if f.name == "age"] == ["age in years"]
    assert fg.read().column("age").to_pylist() == [30, 40, 50]
    assert store.connectors().column("name").to_pylist() == ["crm"]
    assert store.describe_connector("crm")["feature_groups"] == ["profile"]
    spine = pa.table(
        {
            "customer_id": [3, 1, 9],
            "ts": [dt.datetime(2024, 1, 2), dt.datetime(2024, 2, 1), dt.datetime(2024, 2, 1)],
        }
    )
    got = store.get_features(["age"], spine=spine, as_of="ts")
    assert got.column("age").to_pylist() == [None, 30, None]
    fg.drop()
    store.drop_connector("crm")
    assert store.connectors().num_rows == 0


def test_secrets_are_never_stored_or_shown(store, store_path, pg_table, monkeypatch, tmp_path):
    t, conn = pg_table
    secret = "s3cret-" + uuid.uuid4().hex
    monkeypatch.setenv("FSQL_TEST_PG_SECRET", secret)
    with pytest.raises(FsqlError) as e:  # a plain password is refused
        store.sql(f"CREATE CONNECTOR bad TYPE postgres OPTIONS ({PG}, password '{secret}')")
    assert e.value.sqlstate == "28000" and secret not in str(e.value)
    assert store.connectors().num_rows == 0
    store.sql(
        f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG}, password_env 'FSQL_TEST_PG_SECRET')"
    )
    file = tmp_path / "pw"
    file.write_text(secret + "\n")
    store.create_connector(
        "crm2",
        "postgres",
        {"host": "127.0.0.1", "database": "test", "user": "postgres", "password_file": str(file)},
    )
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP p CONNECTOR crm PRIMARY KEY (id) EVENT TIME updated_at "
        f"AS SELECT id, age, updated_at FROM {t}"
    )
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP p2 CONNECTOR crm2 PRIMARY KEY (id) "
        f"AS SELECT id, age FROM {t}"
    )
    assert store.sql("SELECT count(*) AS n FROM p2").column("n").to_pylist() == [3]
    texts = [
        str(store.sql("SHOW CONNECTORS").to_pylist()),
        str(store.sql("DESCRIBE CONNECTOR crm").to_pylist()),
        str(store.sql("DESCRIBE CONNECTOR crm2").to_pylist()),
        "\n".join(store.sql("EXPLAIN SELECT * FROM p WHERE id = 1").column(0).to_pylist()),
        "\n".join(store.sql("EXPLAIN SELECT FEATURES p.age").column(0).to_pylist()),
    ]
    conn.execute(f"ALTER TABLE {t} RENAME COLUMN age TO age_years")
    with pytest.raises(FsqlError) as e:
        store.sql("SELECT * FROM p")
    texts.append(str(e.value))
    conn.execute(f"ALTER TABLE {t} RENAME COLUMN age_years TO age")
    for text in texts:
        assert secret not in text
    store.close()
    for f in store_path.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_missing_secret_at_read(store, pg_table, monkeypatch):
    t, _ = pg_table
    monkeypatch.setenv("FSQL_TEST_PG_SECRET2", "x")
    store.sql(
        f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG}, password_env 'FSQL_TEST_PG_SECRET2')"
    )
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP p CONNECTOR crm PRIMARY KEY (id) AS SELECT id FROM {t}"
    )
    monkeypatch.delenv("FSQL_TEST_PG_SECRET2")
    with pytest.raises(FsqlError) as e:
        store.sql("SELECT * FROM p")
    assert e.value.sqlstate == "28000"
    assert 'connector "crm"' in str(e.value) and "FSQL_TEST_PG_SECRET2" in str(e.value)


def test_bad_connector_definitions(store):
    with pytest.raises(FsqlError) as e:
        store.sql("CREATE CONNECTOR x TYPE postgress OPTIONS (database 'test')")
    assert e.value.sqlstate == "22023" and "postgres" in (e.value.hint or "")
    with pytest.raises(FsqlError) as e:
        store.sql("CREATE CONNECTOR x TYPE postgres OPTIONS (database 'test', hots 'h')")
    assert e.value.sqlstate == "22023" and "hots" in str(e.value) and "host" in (e.value.hint or "")
    with pytest.raises(FsqlError) as e:
        store.sql("CREATE CONNECTOR x TYPE mysql OPTIONS (host 'h')")
    assert e.value.sqlstate == "22023" and "database" in str(e.value)
    with pytest.raises(FsqlError) as e:
        store.sql("CREATE CONNECTOR x OPTIONS (database 'test')")
    assert e.value.sqlstate == "42601"
    with pytest.raises(FsqlError) as e:
        store.sql(
            "CREATE ON DEMAND FEATURE GROUP p CONNECTOR nope PRIMARY KEY (id) AS SELECT 1 AS id"
        )
    assert e.value.sqlstate == "42704" and "nope" in str(e.value)
    with pytest.raises(FsqlError) as e:
        store.sql("CREATE ON DEMAND FEATURE GROUP p PRIMARY KEY (id) AS SELECT 1 AS id")
    assert e.value.sqlstate == "42601" and "CONNECTOR" in str(e.value)
    assert store.connectors().num_rows == 0 and store.feature_groups() == []


def test_on_demand_has_no_change_feed(store, pg_table):
    t, _ = pg_table
    store.sql(f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG})")
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP p CONNECTOR crm PRIMARY KEY (id) AS SELECT id FROM {t}"
    )
    with pytest.raises(FsqlError) as e:
        group_source(store, store.catalog.feature_group(store.project, "p"), since_us=0)
    assert e.value.sqlstate == "0A000"


def test_training_dataset_over_on_demand_group(store, pg_table):
    t, _ = pg_table
    store.sql(f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG})")
    store.sql(
        "CREATE ON DEMAND FEATURE GROUP profile CONNECTOR crm PRIMARY KEY (customer_id) "
        f"EVENT TIME updated_at AS SELECT id AS customer_id, age, updated_at FROM {t}"
    )
    labels = pa.table(
        {
            "customer_id": [1, 2, 3, 3],
            "ts": [dt.datetime(2024, 1, d) for d in (5, 1, 3, 2)],
            "label": [1, 0, 1, 0],
        }
    )
    store.create_feature_group("labels", labels, primary_key="customer_id", event_time="ts")
    store.sql(
        "CREATE TRAINING DATASET churn AS SELECT FEATURES age, labels.label "
        "FROM labels AS OF labels.ts"
    )
    rows = store.sql("SELECT * FROM churn").to_pylist()
    got = sorted((r["customer_id"], r["ts"], r["age"], r["label"]) for r in rows)
    assert got == [
        (1, dt.datetime(2024, 1, 5), 30, 1),
        (2, dt.datetime(2024, 1, 1), None, 0),  # profile row is from Jan 2: not yet true
        (3, dt.datetime(2024, 1, 2), None, 0),
        (3, dt.datetime(2024, 1, 3), 50, 1),
    ]


def test_fetch_mode_explain_shows_source_query(store, pg_table):
    t, _ = pg_table
    store.sql(f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG})")
    store.sql(
        "CREATE ON DEMAND FEATURE GROUP p CONNECTOR crm PRIMARY KEY (id) "
        f"AS SELECT id, age / 7 AS weeks, COALESCE(age, 0) % 3 AS m FROM {t}"
    )
    # PostgreSQL integer division and modulo, as the source means them
    assert store.sql("SELECT weeks, m FROM p ORDER BY id").to_pylist() == [
        {"weeks": 4, "m": 0},
        {"weeks": 5, "m": 1},
        {"weeks": 7, "m": 2},
    ]
    plan = "\n".join(store.sql("EXPLAIN SELECT * FROM p").column(0).to_pylist())
    assert '(postgres, fetch): SELECT "id", "age" / 7 AS "weeks"' in plan
    assert f'FROM "public"."{t}"' in plan


def test_describe_shows_connector_and_query(store, pg_table):
    t, _ = pg_table
    store.sql(f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG})")
    store.sql(
        "CREATE ON DEMAND FEATURE GROUP p CONNECTOR crm PRIMARY KEY (id) "
        f"AS SELECT id, Age FROM {t} WHERE id > 1"
    )
    info = store.get_feature_group("p").describe()
    assert info["kind"] == "on_demand" and info["connector"] == "crm"
    assert info["query"] == f'SELECT "id", "age" FROM "{t}" WHERE "id" > 1'
    meta = store.sql("DESCRIBE FEATURE GROUP p").schema.metadata
    assert meta[b"kind"] == b"on_demand" and meta[b"connector"] == b"crm"
    assert store.sql("SELECT id FROM p ORDER BY id").column("id").to_pylist() == [2, 3]


def test_secret_with_special_characters_reaches_the_engine(store, pg_table, monkeypatch):
    from fsql.bind.on_demand import open_connector, set_secret
    from fsql.connectors.secrets import secret_param

    t, _ = pg_table
    secret = "a\\b'c\"d\nq\tz%{x}"
    monkeypatch.setenv("FSQL_TEST_ODD_PW", secret)
    store.sql(f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG}, password_env 'FSQL_TEST_ODD_PW')")
    conn = open_connector(store.catalog, store.project, "crm")
    placeholder = set_secret(store.engine, conn)
    got = store.engine.query(f"SELECT {placeholder.sql('clickhouse')} AS v").column("v")
    assert got.to_pylist() == [secret]
    assert secret_param(conn.id) in placeholder.sql("clickhouse")
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP p CONNECTOR crm PRIMARY KEY (id) AS SELECT id FROM {t}"
    )
    assert store.sql("SELECT count(*) AS n FROM p").column("n").to_pylist() == [3]


def test_alter_connector(store, pg_table, monkeypatch):
    t, _ = pg_table
    store.sql(f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG})")
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP p CONNECTOR crm PRIMARY KEY (id) AS SELECT id FROM {t}"
    )
    monkeypatch.setenv("FSQL_TEST_ROTATED", "rotated-secret-value")
    store.sql(
        "ALTER CONNECTOR crm SET OPTIONS (password_env 'FSQL_TEST_ROTATED') "
        "SET DESCRIPTION 'CRM replica'"
    )
    info = store.describe_connector("crm")
    assert info["options"]["password_env"] == "FSQL_TEST_ROTATED"
    assert info["description"] == "CRM replica"
    assert store.sql("SELECT count(*) AS n FROM p").column("n").to_pylist() == [3]
    # a change that cannot reach the source changes nothing
    with pytest.raises(FsqlError) as e:
        store.sql("ALTER CONNECTOR crm SET OPTIONS (port '1', connect_timeout '2')")
    assert e.value.sqlstate == "08001"
    assert store.describe_connector("crm")["options"]["port"] == "5432"
    with pytest.raises(FsqlError) as e:
        store.sql("ALTER CONNECTOR crm SET OPTIONS (password 'x')")
    assert e.value.sqlstate == "28000"
    store.alter_connector("crm", {"password_env": ""})
    assert "password_env" not in store.describe_connector("crm")["options"]
    with pytest.raises(FsqlError) as e:
        store.sql("ALTER CONNECTOR nope SET DESCRIPTION 'x'")
    assert e.value.sqlstate == "42704"


def test_fetch_mode_across_reopened_stores(tmp_path, pg_table):
    """Fetched rows live in engine tables of the store that read them; a
    store opened after another one closed sets its own up."""
    import fsql

    t, _ = pg_table
    for i in range(3):
        with fsql.connect(tmp_path / f"s{i}") as s:
            s.sql(f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG})")
            s.sql(
                "CREATE ON DEMAND FEATURE GROUP p CONNECTOR crm PRIMARY KEY (id) "
                f"AS SELECT id, upper('x') AS u FROM {t}"
            )
            for _ in range(5):  # more reads than fetch tables kept
                assert s.sql("SELECT count(*) AS n FROM p").column("n").to_pylist() == [3]


def test_source_unreachable_at_read(store, pg_table):
    t, _ = pg_table
    store.sql(f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG})")
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP p CONNECTOR crm PRIMARY KEY (id) AS SELECT id FROM {t}"
    )
    # the source moves away after creation (check=False: store it unchecked)
    store.alter_connector("crm", {"port": "1", "connect_timeout": "2"}, check=False)
    for text in ("SELECT * FROM p", "SELECT FEATURES p.id"):
        with pytest.raises(FsqlError) as e:
            store.sql(text)
        assert e.value.sqlstate == "08001", text
        assert 'connector "crm"' in str(e.value) and "127.0.0.1:1" in str(e.value), text
    with pytest.raises(FsqlError) as e:  # a bare connector table: the same error
        store.sql(f"SELECT * FROM crm.{t}")
    assert e.value.sqlstate == "08001" and 'connector "crm"' in str(e.value)


def test_missing_connector_is_undefined_object(store, pg_table):
    """A connector is not a table: naming one that does not exist is 42704
    (undefined_object), not 42P01 (undefined_table)."""
    t, _ = pg_table
    store.sql(f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG})")
    with pytest.raises(FsqlError) as e:
        store.sql("DROP CONNECTOR nosuch")
    assert e.value.sqlstate == "42704" and '"nosuch"' in str(e.value)
    with pytest.raises(FsqlError) as e:
        store.sql(
            "CREATE ON DEMAND FEATURE GROUP p CONNECTOR nocon PRIMARY KEY (id) "
            f"AS SELECT id FROM {t}"
        )
    assert e.value.sqlstate == "42704" and '"nocon"' in str(e.value)
    with pytest.raises(FsqlError) as e:  # close to an existing name: suggested
        store.drop_connector("crn")
    assert e.value.sqlstate == "42704" and "'crm'" in (e.value.hint or "")
    assert store.feature_groups() == []
    assert (
        store.sql("DROP CONNECTOR IF EXISTS nosuch").column(0).to_pylist()[0].endswith("SKIPPING")
    )


def test_explain_of_a_fetch_mode_group_does_not_fetch(store, pg_table):
    """EXPLAIN describes: it prints the query the source would receive and
    neither runs it nor loads a temporary table."""
    t, conn = pg_table
    view = f"{t}_v"
    conn.execute(f"CREATE VIEW {view} AS SELECT id, updated_at, 1 / (id - 99) AS x FROM {t}")
    try:
        store.sql(f"CREATE CONNECTOR crm TYPE postgres OPTIONS ({PG})")
        store.sql(
            "CREATE ON DEMAND FEATURE GROUP p CONNECTOR crm PRIMARY KEY (id) EVENT TIME updated_at "
            f"AS SELECT id, updated_at, upper('a') AS u, x FROM {view}"
        )
        conn.execute(f"INSERT INTO {t} VALUES (99, 1, '2024-01-05')")  # 1/0 at the source now

        def temp_tables() -> int:
            found = store.engine.query(
                "SELECT count() AS n FROM system.tables WHERE database = 'fsqltmp_on_demand'"
            )
            return int(found.column("n")[0].as_py())

        before = temp_tables()
        for text in ("EXPLAIN SELECT * FROM p WHERE id = 1", "EXPLAIN SELECT FEATURES p.x"):
            plan = "\n".join(store.sql(text).column(0).to_pylist())
            assert "on-demand p via connector crm (postgres, fetch)" in plan, text
            assert f'FROM "public"."{view}"' in plan and "UPPER('a')" in plan, text
        assert temp_tables() == before
        with pytest.raises(FsqlError) as e:  # a real read fetches, and PostgreSQL divides by 0
            store.sql("SELECT * FROM p")
        assert e.value.sqlstate == "22012" and 'connector "crm"' in str(e.value)
        conn.execute(f"DELETE FROM {t} WHERE id = 99")
        assert store.sql("SELECT count(*) AS n FROM p").column("n").to_pylist() == [3]
        assert temp_tables() > before
    finally:
        conn.execute(f"DROP VIEW IF EXISTS {view}")
