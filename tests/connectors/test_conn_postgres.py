"""On-demand feature groups over the real local PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

import fsql
from fsql.errors import FsqlError

UTC = dt.UTC
PG_OPTIONS = {"host": "127.0.0.1", "port": "5432", "database": "test", "user": "postgres"}


def _connector(store, name="crm", **extra):
    store.create_connector(name, "postgres", {**PG_OPTIONS, **extra})


def test_type_mapping_and_nulls(store, pg):
    t = pg.table(
        "od_types",
        "id bigint, i2 smallint, i4 integer, n numeric(10,2), f4 real, f8 double precision, "
        "txt text, vc varchar(20), flag boolean, d date, ts timestamp, tstz timestamptz, "
        "js jsonb, tags text[]",
        "(1, 2, 3, 12345678.91, 1.5, 2.25, 'héllo', 'v', true, '2024-02-29', "
        "'2024-01-01 10:00:00.123456', '2024-01-01 10:00:00+02', '{\"a\": 1}', '{x,y}'),"
        "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2024-01-02', NULL, NULL, NULL)",
    )
    _connector(store)
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP typed CONNECTOR crm PRIMARY KEY (id) EVENT TIME ts "
        f"AS SELECT * FROM {t}"
    )
    fg = store.get_feature_group("typed")
    types = {f.name: f.type for f in fg.features}
    assert types == {
        "id": "bigint",
        "i2": "smallint",
        "i4": "integer",
        "n": "numeric(10,2)",
        "f4": "real",
        "f8": "double precision",
        "txt": "text",
        "vc": "text",
        "flag": "boolean",
        "d": "date",
        "ts": "timestamp",
        "tstz": "timestamptz",
        "js": "json",
        "tags": "text[]",
    }
    rows = store.sql("SELECT * FROM typed ORDER BY id").to_pylist()
    assert rows[0]["i2"] == 2 and rows[0]["i4"] == 3
    assert rows[0]["n"] == Decimal("12345678.91")
    assert rows[0]["f4"] == pytest.approx(1.5) and rows[0]["f8"] == 2.25
    assert rows[0]["txt"] == "héllo" and rows[0]["vc"] == "v"
    assert rows[0]["flag"] is True
    assert rows[0]["d"] == dt.date(2024, 2, 29)
    assert rows[0]["ts"] == dt.datetime(2024, 1, 1, 10, 0, 0, 123456)
    assert rows[0]["tstz"] == dt.datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    assert rows[0]["tags"] == ["x", "y"]
    assert '"a"' in rows[0]["js"]
    # NULLs stay NULL in every type
    nulls = rows[1]
    assert [k for k, v in nulls.items() if v is not None] == ["id", "ts", "tags"]
    assert nulls["tags"] == []  # ClickHouse arrays are never NULL: empty, as in cached groups


def test_query_with_expressions_and_filter(store, pg):
    t = pg.table(
        "od_cust",
        "id bigint, age int, updated_at timestamp, active boolean",
        "(1, 30, '2024-01-01', true), (2, 40, '2024-01-02', false), (3, 50, '2024-01-03', true)",
    )
    _connector(store)
    store.create_on_demand_feature_group(
        "profile",
        connector="crm",
        query=f"SELECT id AS customer_id, age * 2 AS age2, updated_at FROM {t} WHERE active",
        primary_key="customer_id",
        event_time="updated_at",
        description="profile from the CRM",
    )
    got = store.sql("SELECT customer_id, age2 FROM profile ORDER BY customer_id").to_pylist()
    assert got == [{"customer_id": 1, "age2": 60}, {"customer_id": 3, "age2": 100}]
    # the source is read live: a new row shows up without any ingestion
    pg.execute(f"INSERT INTO {t} VALUES (4, 60, '2024-01-04', true)")
    assert store.sql("SELECT count(*) AS n FROM profile").column("n").to_pylist() == [3]
    assert store.get_feature_group("profile").describe()["kind"] == "on_demand"


def test_filters_pushed_to_the_source(store, pg):
    """A view whose column divides by zero on row 999: a filtered read only
    succeeds if the filter runs inside PostgreSQL, before the division."""
    t = pg.table(
        "od_trap",
        "id bigint, ts timestamp",
        "(1, '2024-01-01'), (2, '2024-01-02'), (999, '2024-01-03')",
    )
    v = pg.view("od_trapv", f"SELECT id, ts, 1 / (id - 999) AS x FROM {t}")
    _connector(store)
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP trap CONNECTOR crm PRIMARY KEY (k) EVENT TIME ts "
        f"AS SELECT id AS k, ts, x FROM {v}"
    )
    with pytest.raises(FsqlError) as e:  # unfiltered: PostgreSQL computes 1/0
        store.sql("SELECT * FROM trap")
    assert "division by zero" in str(e.value)
    # the filter reaches PostgreSQL, so row 999 is never computed
    assert store.sql("SELECT k, x FROM trap WHERE k = 2").to_pylist() == [{"k": 2, "x": 0}]
    assert store.sql("SELECT k FROM trap AS t WHERE t.k IN (1, 2) ORDER BY k").column(
        "k"
    ).to_pylist() == [1, 2]
    plan = "\n".join(store.sql("EXPLAIN SELECT k FROM trap WHERE k = 2").column(0).to_pylist())
    assert "on-demand trap via connector crm (postgres, pushdown)" in plan
    assert f'FROM "{v}" WHERE "id" = 2' in plan
    # SELECT FEATURES with a key filter (latest, and as of a time) sends it too
    assert store.sql("SELECT FEATURES trap.x WHERE k = 2").to_pylist() == [{"k": 2, "x": 0}]
    got = store.sql("SELECT FEATURES trap.x AS OF TIMESTAMP '2024-02-01' WHERE k IN (1, 2)")
    assert sorted(got.column("k").to_pylist()) == [1, 2]
    plan = "\n".join(store.sql("EXPLAIN SELECT FEATURES trap.x WHERE k = 2").column(0).to_pylist())
    assert f'FROM "{v}" WHERE "id" = 2' in plan


def test_explain_of_select_features_shows_pushed_as_of(store, pg):
    t = pg.table("od_asof", "id bigint, v int, ts timestamp", "(1, 1, '2024-01-01')")
    _connector(store)
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP ao CONNECTOR crm PRIMARY KEY (id) EVENT TIME ts "
        f"AS SELECT id, v, ts FROM {t}"
    )
    assert store.sql("SELECT FEATURES v AS OF TIMESTAMP '2024-06-01'").column("v").to_pylist() == [
        1
    ]
    plan = "\n".join(
        store.sql("EXPLAIN SELECT FEATURES v AS OF TIMESTAMP '2024-06-01'").column(0).to_pylist()
    )
    line = next(x for x in plan.split("\n") if x.startswith("-- on-demand ao"))
    assert '"ts" <=' in line and f'FROM "{t}"' in line


def test_point_in_time_join_with_cached_group(store, pg):
    t = pg.table(
        "od_pit",
        "id bigint, age int, updated_at timestamp",
        "(1, 30, '2024-01-01'), (1, 31, '2024-03-01'), (2, 40, '2024-02-01')",
    )
    _connector(store)
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP profile CONNECTOR crm PRIMARY KEY (customer_id) "
        f"EVENT TIME updated_at AS SELECT id AS customer_id, age, updated_at FROM {t}"
    )
    import pyarrow as pa

    tx = pa.table(
        {
            "customer_id": [1, 1, 2],
            "event_ts": [
                dt.datetime(2024, 1, 15),
                dt.datetime(2024, 2, 15),
                dt.datetime(2024, 1, 1),
            ],
            "amount": [10.0, 20.0, 5.0],
        }
    )
    store.create_feature_group("tx", tx, primary_key="customer_id", event_time="event_ts")
    labels = pa.table(
        {
            "customer_id": [1, 1, 1, 2, 2, 3],
            "ts": [
                dt.datetime(2023, 12, 1),
                dt.datetime(2024, 2, 1),
                dt.datetime(2024, 3, 1),
                dt.datetime(2024, 1, 15),
                dt.datetime(2024, 2, 1),
                dt.datetime(2024, 5, 1),
            ],
        }
    )
    store.create_feature_group("labels", labels, primary_key="customer_id", event_time="ts")
    got = store.sql("SELECT FEATURES amount, age FROM labels AS OF labels.ts").to_pylist()
    want = _oracle(labels.to_pylist(), tx.to_pylist(), _pg_rows(pg, t))
    assert [(r["customer_id"], r["ts"], r["amount"], r["age"]) for r in got] == want


def _pg_rows(pg, t):
    cur = pg.conn.execute(f"SELECT id, age, updated_at FROM {t}")
    return [{"customer_id": r[0], "age": r[1], "updated_at": r[2]} for r in cur.fetchall()]


def _latest(rows, key, at, tcol, vcol):
    c = [r for r in rows if r["customer_id"] == key and r[tcol] <= at]
    return max(c, key=lambda r: r[tcol])[vcol] if c else None


def _oracle(spine, tx, profile):
    """Brute force: per spine row, the latest row at or before its time."""
    return [
        (
            s["customer_id"],
            s["ts"],
            _latest(tx, s["customer_id"], s["ts"], "event_ts", "amount"),
            _latest(profile, s["customer_id"], s["ts"], "updated_at", "age"),
        )
        for s in spine
    ]


# bad input -------------------------------------------------------------------


def test_unreachable_source(store):
    with pytest.raises(FsqlError) as e:
        store.sql(
            "CREATE CONNECTOR down TYPE postgres OPTIONS (host '127.0.0.1', port '1', "
            "database 'test', connect_timeout '2')"
        )
    assert e.value.sqlstate == "08001"
    assert 'connector "down"' in str(e.value) and "127.0.0.1:1" in str(e.value)
    assert store.connectors().num_rows == 0  # nothing half-created


def test_wrong_credentials(store, pg):
    with pytest.raises(FsqlError) as e:
        store.create_connector("crm", "postgres", {**PG_OPTIONS, "user": "no_such_role_fsql"})
    assert e.value.sqlstate.startswith("28")
    assert 'connector "crm"' in str(e.value) and "no_such_role_fsql" in str(e.value)
    assert store.connectors().num_rows == 0


def test_missing_database(store, pg):
    with pytest.raises(FsqlError) as e:
        store.create_connector("crm", "postgres", {**PG_OPTIONS, "database": "no_such_db_fsql"})
    assert e.value.sqlstate == "3D000"
    assert 'connector "crm"' in str(e.value) and "no_such_db_fsql" in str(e.value)


def test_unknown_table_or_column_at_creation(store, pg):
    _connector(store)
    with pytest.raises(FsqlError) as e:
        store.sql(
            "CREATE ON DEMAND FEATURE GROUP p CONNECTOR crm PRIMARY KEY (id) "
            "AS SELECT id FROM no_such_table_fsql"
        )
    assert e.value.sqlstate == "42P01"
    assert 'connector "crm"' in str(e.value) and "no_such_table_fsql" in str(e.value)
    t = pg.table("od_cols", "id bigint", "(1)")
    with pytest.raises(FsqlError) as e:
        store.sql(
            f"CREATE ON DEMAND FEATURE GROUP p CONNECTOR crm PRIMARY KEY (id) "
            f"AS SELECT id, nope FROM {t}"
        )
    assert e.value.sqlstate == "42703" and "nope" in str(e.value)
    with pytest.raises(FsqlError) as e:  # key not among the query's columns
        store.sql(
            f"CREATE ON DEMAND FEATURE GROUP p CONNECTOR crm PRIMARY KEY (k) AS SELECT id FROM {t}"
        )
    assert e.value.sqlstate == "42703"
    assert store.feature_groups() == []


def test_vanished_table_and_column(store, pg):
    t = pg.table("od_gone", "id bigint, a int, b int, ts timestamp", "(1, 2, 3, '2024-01-01')")
    _connector(store)
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP g CONNECTOR crm PRIMARY KEY (id) EVENT TIME ts "
        f"AS SELECT id, a, b, ts FROM {t}"
    )
    pg.execute(f"ALTER TABLE {t} DROP COLUMN b")
    with pytest.raises(FsqlError) as e:
        store.sql("SELECT * FROM g")
    assert e.value.sqlstate == "42703"
    assert 'connector "crm"' in str(e.value) and t in str(e.value) and '"b"' in str(e.value)
    pg.execute(f"DROP TABLE {t}")
    with pytest.raises(FsqlError) as e:
        store.sql("SELECT FEATURES a")
    assert e.value.sqlstate == "42P01"
    assert 'connector "crm"' in str(e.value) and t in str(e.value)


def test_unmappable_type(store, pg):
    t = pg.table("od_bad", "id bigint, span interval", "(1, '1 day')")
    _connector(store)
    with pytest.raises(FsqlError) as e:
        store.sql(
            "CREATE ON DEMAND FEATURE GROUP bad CONNECTOR crm PRIMARY KEY (id) "
            f"AS SELECT * FROM {t}"
        )
    assert e.value.sqlstate == "42804"
    assert (
        'connector "crm"' in str(e.value)
        and '"span"' in str(e.value)
        and "interval" in str(e.value)
    )
    assert store.feature_groups() == []
    # a CAST in the query maps it
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP bad CONNECTOR crm PRIMARY KEY (id) "
        f"AS SELECT id, CAST(EXTRACT(EPOCH FROM span) AS bigint) AS span_s FROM {t}"
    )
    assert store.sql("SELECT span_s FROM bad").to_pylist() == [{"span_s": 86400}]


def test_reopen_store_reads_again(store_path, pg):
    t = pg.table("od_reopen", "id bigint, v text", "(7, 'x')")
    with fsql.connect(store_path) as s:
        s.create_connector("crm", "postgres", PG_OPTIONS)
        s.create_on_demand_feature_group(
            "r", connector="crm", query=f"SELECT id, v FROM {t}", primary_key="id"
        )
    with fsql.connect(store_path) as s:
        assert s.sql("SELECT * FROM r").to_pylist() == [{"id": 7, "v": "x"}]


def test_point_in_time_join_bounds_reach_the_source(store, pg):
    """The join only needs keys within the spine's range and times up to its
    latest: row 999 (1/0 in the view) is outside both and never computed."""
    t = pg.table(
        "od_pitb",
        "id bigint, ts timestamp",
        "(1, '2024-01-01'), (2, '2024-01-02'), (999, '2024-01-03')",
    )
    v = pg.view("od_pitbv", f"SELECT id, ts, 1 / (id - 999) AS x FROM {t}")
    _connector(store)
    store.sql(
        "CREATE ON DEMAND FEATURE GROUP trap CONNECTOR crm PRIMARY KEY (k) EVENT TIME ts "
        f"AS SELECT id AS k, ts, x FROM {v}"
    )
    import pyarrow as pa

    spine = pa.table({"k": [2, 1, 2], "at": [dt.datetime(2024, 1, d) for d in (5, 5, 1)]})
    got = store.get_features(["x"], spine=spine, as_of="at")
    assert got.column("x").to_pylist() == [0, 0, None]
    store.create_feature_group("labels", spine.slice(0, 2), primary_key="k", event_time="at")
    plan = "\n".join(
        store.sql("EXPLAIN SELECT FEATURES x FROM labels AS OF labels.at").column(0).to_pylist()
    )
    assert '"id" <= <max of spine k>' in plan and '"ts" <= <max of spine' in plan
    assert store.sql("SELECT FEATURES x FROM labels AS OF labels.at").column("x").to_pylist() == [
        0,
        0,
    ]


def test_on_demand_group_as_spine_and_in_plain_joins(store, pg):
    t = pg.table(
        "od_spine",
        "id bigint, age int, updated_at timestamp",
        "(1, 30, '2024-01-10'), (2, 40, '2024-01-20'), (3, 50, '2024-01-30')",
    )
    _connector(store)
    store.sql(
        "CREATE ON DEMAND FEATURE GROUP profile CONNECTOR crm PRIMARY KEY (customer_id) "
        f"EVENT TIME updated_at AS SELECT id AS customer_id, age, updated_at FROM {t}"
    )
    import pyarrow as pa

    tx = pa.table(
        {
            "customer_id": [1, 2, 2],
            "event_ts": [
                dt.datetime(2024, 1, 1),
                dt.datetime(2024, 1, 1),
                dt.datetime(2024, 1, 25),
            ],
            "amount": [1.0, 2.0, 3.0],
        }
    )
    store.create_feature_group("tx", tx, primary_key="customer_id", event_time="event_ts")
    got = store.sql(
        "SELECT FEATURES amount FROM profile AS OF profile.updated_at ORDER BY customer_id"
    ).to_pylist()
    assert [(r["customer_id"], r["amount"]) for r in got] == [(1, 1.0), (2, 2.0), (3, None)]
    joined = store.sql(
        "SELECT p.customer_id, p.age, t.amount FROM profile AS p JOIN tx AS t "
        "ON p.customer_id = t.customer_id WHERE p.age >= 40 ORDER BY t.amount"
    ).to_pylist()
    assert joined == [
        {"customer_id": 2, "age": 40, "amount": 2.0},
        {"customer_id": 2, "age": 40, "amount": 3.0},
    ]
    plan = "\n".join(
        store.sql(
            "EXPLAIN SELECT p.age FROM profile AS p JOIN tx AS t "
            "ON p.customer_id = t.customer_id WHERE p.age >= 40 AND t.amount > 1"
        )
        .column(0)
        .to_pylist()
    )
    assert '"age" >= 40' in plan and "amount" not in plan.split("-- on-demand")[1]


def test_connector_tables_in_plain_sql_and_as_spine(store, pg):
    labels = pg.table(
        "od_labels",
        "customer_id bigint, ts timestamp, label int",
        "(1, '2024-01-15', 1), (2, '2024-01-01', 0), (1, '2023-12-01', 0)",
    )
    _connector(store)
    import pyarrow as pa

    tx = pa.table(
        {
            "customer_id": [1, 2],
            "event_ts": [dt.datetime(2024, 1, 10), dt.datetime(2024, 1, 2)],
            "amount": [5.0, 7.0],
        }
    )
    store.create_feature_group("tx", tx, primary_key="customer_id", event_time="event_ts")
    assert store.sql(
        f"SELECT label FROM crm.{labels} AS l WHERE l.customer_id = 2"
    ).to_pylist() == [{"label": 0}]
    assert store.sql(f"SELECT count(*) AS n FROM crm.public.{labels}").column("n").to_pylist() == [
        3
    ]
    got = store.sql(
        f"SELECT FEATURES amount, l.label FROM crm.{labels} AS l AS OF l.ts"
    ).to_pylist()
    assert sorted((r["customer_id"], r["ts"], r["amount"], r["label"]) for r in got) == [
        (1, dt.datetime(2023, 12, 1), None, 0),
        (1, dt.datetime(2024, 1, 15), 5.0, 1),
        (2, dt.datetime(2024, 1, 1), None, 0),
    ]
    with pytest.raises(FsqlError) as e:
        store.create_connector("pg_catalog", "postgres", PG_OPTIONS)
    assert e.value.sqlstate == "42939"


def test_pushed_filters_never_change_results(store, pg):
    """Random filters over an on-demand group return exactly what they
    return over a cached copy of the same rows."""
    import random

    rng = random.Random(3)
    rows = []
    for i in range(300):
        rows.append(
            (
                i % 40,
                dt.datetime(2024, 1, 1) + dt.timedelta(hours=i * 7),
                None if i % 9 == 0 else rng.randrange(-50, 50),
                None if i % 11 == 0 else rng.choice(["a", "b", "B", "c d", "é"]),
            )
        )
    t = pg.table("od_fuzz", "k bigint, ts timestamp, n int, s text")
    with pg.conn.cursor().copy(f"COPY {t} FROM STDIN") as cp:
        for r in rows:
            cp.write_row(r)
    _connector(store)
    store.sql(
        f"CREATE ON DEMAND FEATURE GROUP od CONNECTOR crm PRIMARY KEY (k) EVENT TIME ts "
        f"AS SELECT k, ts, n, s FROM {t}"
    )
    copy = store.sql("SELECT * FROM od")
    assert copy.num_rows == 300
    store.create_feature_group("cached", copy, primary_key="k", event_time="ts")
    atoms = [
        "k = {i}",
        "k <> {i}",
        "k < {i}",
        "k >= {i}",
        "k IN ({i}, {j}, 3)",
        "k BETWEEN {i} AND {j}",
        "n > {v}",
        "n <= {v}",
        "n IS NULL",
        "n IS NOT NULL",
        "s = 'b'",
        "s IN ('a', 'é')",
        "s IS NULL",
        "ts <= TIMESTAMP '2024-01-20 00:00:00'",
        "ts > TIMESTAMP '2024-02-01 12:00:00'",
        "n + k > {v}",
    ]
    for _ in range(25):
        parts = []
        for _ in range(rng.randrange(1, 4)):
            atom = rng.choice(atoms).format(
                i=rng.randrange(40), j=rng.randrange(40), v=rng.randrange(-50, 50)
            )
            parts.append(f"NOT ({atom})" if rng.random() < 0.15 else atom)
        joiner = " AND " if rng.random() < 0.7 else " OR "
        where = joiner.join(parts)
        q = "SELECT k, ts, n, s FROM {} WHERE " + where + " ORDER BY k, ts"
        got = store.sql(q.format("od"))
        want = store.sql(q.format("cached"))
        assert got.to_pylist() == want.to_pylist(), where
    # and something was pushed
    plan = "\n".join(
        store.sql("EXPLAIN SELECT * FROM od WHERE k = 3 AND n > 0").column(0).to_pylist()
    )
    assert 'WHERE "k" = 3 AND "n" > 0' in plan


def test_unconstrained_numeric_is_refused_with_a_cast_hint(store, pg):
    """``numeric`` without a precision has no fixed feature type: refused at
    creation in pushdown and fetch mode alike, naming connector and column;
    a CAST in the query (to numeric(p,s) or double precision) reads every
    value exactly as PostgreSQL rounds it."""
    t = pg.table(
        "od_num",
        "id bigint, ts timestamp, n numeric, ns numeric[], w numeric(50,4)",
        "(1, '2024-01-01', 1.123456789123, '{1.5}', 1234567890123456789012345678901234567890.1234),"
        "(2, '2024-01-01', 123456789012345678901234567890123, NULL, NULL)",
    )
    _connector(store)
    for query in (
        f"SELECT id, ts, n FROM {t}",  # pushdown
        f"SELECT id, ts, upper('x') AS u, n FROM {t}",  # fetch
        f"SELECT id, ts, ns FROM {t}",  # numeric[] without precision
        f"SELECT id, ts, sum(w) AS n FROM {t} GROUP BY id, ts",  # aggregates lose it
    ):
        with pytest.raises(FsqlError) as e:
            store.sql(
                "CREATE ON DEMAND FEATURE GROUP g CONNECTOR crm PRIMARY KEY (id) EVENT TIME ts "
                f"AS {query}"
            )
        assert e.value.sqlstate == "42804", query
        assert 'connector "crm"' in str(e.value) and t in str(e.value), query
        assert "without a precision" in str(e.value), query
        assert "CAST(" in (e.value.hint or "") and "double precision" in e.value.hint, query
    assert store.feature_groups() == []
    for name, query in (
        ("exact", f"SELECT id, ts, CAST(n AS numeric(40,4)) AS n, w FROM {t}"),
        ("exact_f", f"SELECT id, ts, upper('x') AS u, CAST(n AS numeric(40,4)) AS n, w FROM {t}"),
        ("approx", f"SELECT id, ts, CAST(n AS double precision) AS n FROM {t}"),
    ):
        store.sql(
            f"CREATE ON DEMAND FEATURE GROUP {name} CONNECTOR crm PRIMARY KEY (id) "
            f"EVENT TIME ts AS {query}"
        )
        rows = store.sql(f"SELECT * FROM {name} ORDER BY id").to_pylist()
        if name == "approx":
            assert [r["n"] for r in rows] == [1.123456789123, 1.2345678901234568e32]
            continue
        assert store.get_feature_group(name).features[2 + (name == "exact_f")].type == (
            "numeric(40,4)"
        )
        assert [r["n"] for r in rows] == [
            Decimal("1.1235"),  # PostgreSQL's rounding, not a truncation
            Decimal("123456789012345678901234567890123.0000"),
        ]
        assert rows[0]["w"] == Decimal("1234567890123456789012345678901234567890.1234")
    # a declared numeric wider than the engine's 76 digits is refused too
    wide = pg.table("od_wide", "id bigint, v numeric(100,2)", "(1, 1)")
    with pytest.raises(FsqlError) as e:
        store.sql(
            "CREATE ON DEMAND FEATURE GROUP g CONNECTOR crm PRIMARY KEY (id) "
            f"AS SELECT id, upper('x') AS u, v FROM {wide}"
        )
    assert e.value.sqlstate == "42804" and "numeric(100,2)" in str(e.value)
    assert '"v"' in str(e.value) and wide in str(e.value)


def test_connector_table_errors_name_the_connector(store, pg):
    """``connector.table`` in plain SQL and as a spine is described at the
    source first: the errors are those of an on-demand group, not the
    engine's."""
    t = pg.table("od_direct", "id bigint, ts timestamp", "(1, '2024-01-01')")
    _connector(store)
    for text in (
        "SELECT * FROM crm.no_such_table_fsql",
        "SELECT * FROM crm.public.no_such_table_fsql",
        "SELECT FEATURES l.id FROM crm.no_such_table_fsql AS l AS OF l.ts",
    ):
        with pytest.raises(FsqlError) as e:
            store.sql(text)
        assert e.value.sqlstate == "42P01", text
        assert 'connector "crm"' in str(e.value) and "no_such_table_fsql" in str(e.value), text
        assert "postgresql(" not in str(e.value) and "Code:" not in str(e.value), text
    assert store.sql(f"SELECT id FROM crm.{t}").to_pylist() == [{"id": 1}]
    store.alter_connector("crm", {"port": "1", "connect_timeout": "2"}, check=False)
    with pytest.raises(FsqlError) as e:
        store.sql(f"SELECT * FROM crm.{t}")
    assert e.value.sqlstate == "08001"
    assert 'connector "crm"' in str(e.value) and "127.0.0.1:1" in str(e.value)
    store.alter_connector("crm", {"port": "5432", "user": "no_such_role_fsql"}, check=False)
    with pytest.raises(FsqlError) as e:
        store.sql(f"SELECT * FROM crm.{t}")
    assert e.value.sqlstate == "28000"
    assert 'connector "crm"' in str(e.value) and "no_such_role_fsql" in str(e.value)


def test_source_errors_during_a_pushdown_read_name_connector_and_object(store, pg):
    """An error PostgreSQL raises while the engine reads it arrives with the
    source's SQLSTATE, naming the connector and the source object, without
    the engine SQL."""
    t = pg.table(
        "od_err",
        "id bigint, ts timestamp, big bigint, n numeric",
        "(1, '2024-01-01', 9223372036854775807, 123456789012345678901234567890123)",
    )
    div = pg.view("od_div", f"SELECT id, ts, 1 / (id - 1) AS x FROM {t}")
    over = pg.view("od_over", f"SELECT id, ts, big + id AS o FROM {t}")
    _connector(store)
    store.sql(
        "CREATE ON DEMAND FEATURE GROUP d CONNECTOR crm PRIMARY KEY (id) EVENT TIME ts "
        f"AS SELECT id, ts, x FROM {div}"
    )
    store.sql(
        "CREATE ON DEMAND FEATURE GROUP o CONNECTOR crm PRIMARY KEY (id) EVENT TIME ts "
        f"AS SELECT id, ts, o FROM {over}"
    )
    cases = [
        ("SELECT * FROM d", "22012", div, "division by zero"),
        ("SELECT FEATURES d.x", "22012", div, "division by zero"),
        (f"SELECT * FROM crm.{div}", "22012", div, "division by zero"),
        ("SELECT * FROM o", "22003", over, "bigint out of range"),
        # the engine's own reading of an unconstrained numeric cannot hold it
        (f"SELECT n FROM crm.{t}", "22003", t, "123456789012345678901234567890123"),
    ]
    for text, sqlstate, obj, words in cases:
        with pytest.raises(FsqlError) as e:
            store.sql(text)
        err = e.value
        assert err.sqlstate == sqlstate, text
        assert 'connector "crm"' in err.message and f"source object {obj}" in err.message, text
        assert words in err.message, text
        assert err.detail is None and "postgresql(" not in str(err) and "Code:" not in str(err)
    # a filter the source runs first still avoids the failing row
    assert store.sql("SELECT * FROM d WHERE id = 2").num_rows == 0
