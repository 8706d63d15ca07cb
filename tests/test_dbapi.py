"""fsql.dbapi: DB-API 2.0 over an in-process store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

import fsql
import fsql.dbapi as dbapi


@pytest.fixture
def conn(store_path: Path) -> Iterator[dbapi.Connection]:
    store = fsql.connect(store_path)
    try:
        store.create_feature_group(
            "tx",
            pa.table(
                {
                    "customer_id": pa.array([1, 2, 1], pa.int64()),
                    "ts": pa.array(
                        [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2), dt.datetime(2024, 3, 1)],
                        pa.timestamp("us"),
                    ),
                    "amount": [1.5, 2.5, 3.5],
                    "note": ["it's", "b", "100%"],
                }
            ),
            primary_key="customer_id",
            event_time="ts",
        )
    finally:
        store.close()
    c = dbapi.connect(store_path)
    try:
        yield c
    finally:
        c.close()


def test_module_globals() -> None:
    assert dbapi.apilevel == "2.0"
    assert dbapi.paramstyle == "pyformat"
    assert dbapi.NUMBER == 20 and dbapi.STRING == 25 and dbapi.DATETIME == 1114


def test_execute_fetch_and_description(conn: dbapi.Connection) -> None:
    cur = conn.cursor()
    cur.execute("SELECT customer_id, amount, note FROM tx ORDER BY ts")
    assert [d[0] for d in cur.description or []] == ["customer_id", "amount", "note"]
    assert cur.description is not None and cur.description[0][1] == dbapi.NUMBER
    assert cur.rowcount == 3
    assert cur.fetchone() == (1, 1.5, "it's")
    assert cur.fetchmany(1) == [(2, 2.5, "b")]
    assert cur.fetchall() == [(1, 3.5, "100%")]
    assert cur.fetchone() is None


def test_parameters_are_bound_not_spliced(conn: dbapi.Connection) -> None:
    cur = conn.cursor()
    cur.execute("SELECT amount FROM tx WHERE note = %s", ("it's",))
    assert cur.fetchall() == [(1.5,)]
    cur.execute(
        "SELECT amount FROM tx WHERE customer_id = %(c)s AND note <> %(n)s ORDER BY ts",
        {"c": 1, "n": "it's"},
    )
    assert cur.fetchall() == [(3.5,)]
    # a literal percent and a %s inside a string are left alone
    cur.execute("SELECT note FROM tx WHERE note = '100%' OR note = %s", ("%s",))
    assert cur.fetchall() == [("100%",)]
    # an injection attempt is just a string value
    cur.execute("SELECT count(*) FROM tx WHERE note = %s", ("x' OR '1'='1",))
    assert cur.fetchall() == [(0,)]
    with pytest.raises(dbapi.ProgrammingError):
        cur.execute("SELECT %s, %s", (1,))


def test_fsql_statements_and_errors(conn: dbapi.Connection) -> None:
    cur = conn.cursor()
    cur.execute("SELECT FEATURES amount AS OF TIMESTAMP '2024-02-01 00:00:00'")
    assert cur.fetchall() == [(1, 1.5), (2, 2.5)]
    with pytest.raises(dbapi.ProgrammingError) as e:
        cur.execute("SELECT * FROM nope")
    assert e.value.sqlstate == "42P01"
    with pytest.raises(dbapi.ProgrammingError) as e:
        cur.execute("SELECT nope FROM tx")
    assert e.value.sqlstate == "42703"
    arrow = conn.cursor().execute("SELECT amount FROM tx ORDER BY ts").fetch_arrow_table()
    assert arrow.column("amount").to_pylist() == [1.5, 2.5, 3.5]


def test_pandas_read_sql_over_dbapi(conn: dbapi.Connection) -> None:
    pd = pytest.importorskip("pandas")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pandas prefers SQLAlchemy connectables
        df = pd.read_sql("SELECT customer_id, amount FROM tx ORDER BY ts", conn)
    assert df["amount"].tolist() == [1.5, 2.5, 3.5]


def test_closed_connection(conn: dbapi.Connection) -> None:
    conn.close()
    with pytest.raises(dbapi.InterfaceError):
        conn.cursor()
