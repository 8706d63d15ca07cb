"""The server's fast paths give the same bytes as the general ones: the
row-by-row encoder of small results against the vectorized encoder, and
online lookups (``fsql.server.fastpath``) against ``store.sql``."""

from __future__ import annotations

import datetime as dt
import random
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import fsql
from fsql.server import encode, fastpath

from .conftest import start_server


def _small_table() -> pa.Table:
    utc = dt.UTC
    return pa.table(
        {
            "i2": pa.array([-32768, 32767, 0, None], pa.int16()),
            "i4": pa.array([-(2**31), 2**31 - 1, 7, None], pa.int32()),
            "i8": pa.array([-(2**63), 2**63 - 1, 42, None], pa.int64()),
            "f8": pa.array([0.1, -0.0, 1e21, None]),
            "f8b": pa.array([float("nan"), float("inf"), float("-inf"), 3.0]),
            "b": pa.array([True, False, None, True]),
            "s": pa.array(["", 'x "y"\tz', "ünï", None]),
            "by": pa.array([b"\x00\x01\xff", b"", None, b"a\\b"], pa.binary()),
            "lby": pa.array([None, b"\n", b"\xfe", b""], pa.large_binary()),
            "ls": pa.array(["a", None, "b", "c"], pa.large_string()),
            "d": pa.array(
                [dt.date(2024, 2, 29), dt.date(1999, 12, 31), dt.date(9999, 12, 31), None]
            ),
            "ts": pa.array(
                [
                    dt.datetime(2024, 1, 1),
                    dt.datetime(2024, 1, 1, 0, 0, 10, 100000),
                    dt.datetime(1970, 1, 1, 23, 59, 59, 999999),
                    None,
                ],
                pa.timestamp("us"),
            ),
            "tsms": pa.array(
                [dt.datetime(2024, 1, 1, 1, 2, 3, 4000), None, dt.datetime(2000, 1, 1), None],
                pa.timestamp("ms"),
            ),
            "tz": pa.array(
                [
                    dt.datetime(2024, 1, 1, tzinfo=utc),
                    dt.datetime(2024, 6, 1, 12, 0, 0, 5, tzinfo=utc),
                    None,
                    dt.datetime(1999, 1, 1, 0, 0, 1, tzinfo=utc),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )


@pytest.mark.parametrize("fmt", [0, 1])
def test_small_results_encode_as_the_vectorized_path(fmt: int) -> None:
    t = _small_table()
    fields = encode.fields_for(t.schema, [fmt])
    small = encode.small_data_rows(t, fields)
    assert small is not None
    assert small == encode.data_rows(t, fields)
    for i in range(t.num_columns):  # column by column, to name a culprit
        one = t.select([i])
        f = encode.fields_for(one.schema, [fmt])
        assert encode.small_data_rows(one, f) == encode.data_rows(one, f), t.column_names[i]


def test_small_results_leave_other_types_to_the_vectorized_path() -> None:
    import decimal

    for arr in (
        pa.array([decimal.Decimal("1.5")], pa.decimal128(5, 2)),
        pa.array([1.5], pa.float32()),
        pa.array([[1, 2]], pa.list_(pa.int64())),
        pa.array([b"\x00"], pa.binary(1)),  # fixed size; binary has a row encoder
        pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("ns")),
    ):
        t = pa.table({"c": arr})
        assert encode.small_data_rows(t, encode.fields_for(t.schema, [])) is None
    # a value it cannot write identically (a year before 1000) falls back too
    t = pa.table({"d": pa.array([dt.date(999, 1, 1)])})
    assert encode.small_data_rows(t, encode.fields_for(t.schema, [])) is None


def test_float_text_is_arrows() -> None:
    rnd = random.Random(5)
    values = [struct.unpack("!d", struct.pack("!Q", rnd.getrandbits(64)))[0] for _ in range(20000)]
    values += [m * 10.0**e for e in range(-12, 24) for m in (1.0, 1.5, 9.999999, 1.2345678901234)]
    values += [rnd.uniform(-1e5, 1e5) for _ in range(5000)] + [0.0, -0.0, 5e-324, 1e-7, 1e-6]
    values = [v for v in values if v == v and abs(v) != float("inf")]
    arrow = pc.cast(pa.array(values, pa.float64()), pa.string()).to_pylist()
    assert [encode.float_text(v) for v in values] == arrow


def _online_store(path: Path) -> fsql.Store:
    store = fsql.connect(path)
    n = 50
    store.create_feature_group(
        "tx",
        pa.table(
            {
                "customer_id": pa.array(range(n), pa.int64()),
                "ts": pa.array([dt.datetime(2024, 1, 1, 0, 0, i) for i in range(n)]),
                "amount": pa.array([i / 3 if i % 7 else None for i in range(n)]),
                "flag": pa.array([i % 2 == 0 for i in range(n)]),
                "channel": pa.array([f"c{i}" if i % 5 else None for i in range(n)]),
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
                "customer_id": pa.array(range(0, n, 2), pa.int64()),
                "updated": pa.array([dt.datetime(2024, 1, 2)] * len(range(0, n, 2))),
                "age": pa.array(range(20, 20 + len(range(0, n, 2))), pa.int32()),
                "born": pa.array([dt.date(1990, 1, 1 + i % 28) for i in range(0, n, 2)]),
            }
        ),
        primary_key="customer_id",
        event_time="updated",
        online=True,
    )
    return store


def test_online_lookup_plan_matches_store_sql(store_path: Path) -> None:
    store = _online_store(store_path)
    try:
        texts = [
            "SELECT FEATURES amount, flag, channel, age, born WHERE customer_id = $1",
            "SELECT FEATURES age, amount WHERE customer_id = $1",  # first group: profile
            "SELECT FEATURES tx.*, profile.age AS a WHERE customer_id = $1",
            "SELECT FEATURES customer_id, ts, amount WHERE customer_id = $1",
        ]
        for text in texts:
            plan = fastpath.build(store, text)
            assert plan is not None, text
            for key in [0, 1, 2, 7, 13, 49, 50, -1, 10**6]:
                expected = store.sql(text, [key])
                rows = plan.rows([key], blocking=False)
                assert rows is not fastpath.NOT_READY
                assert rows == [tuple(r.values()) for r in expected.to_pylist()], (text, key)
                for fmt in (0, 1):
                    fields, _, encoders = plan.encoding([fmt])
                    assert [(f.name, f.oid) for f in fields] == [
                        (f.name, f.oid) for f in encode.fields_for(expected.schema, [fmt])
                    ]
                    assert encode.data_rows_py(rows, encoders) == encode.data_rows(expected, fields)
            # parameters the fast path does not take: the normal path decides
            for odd in (None, "3", 3.0, True, 2**63):
                assert plan.rows([odd], blocking=True) is None
            assert plan.rows([], blocking=True) is None
        # not single-entity key lookups of online groups
        for text in (
            "SELECT FEATURES amount WHERE customer_id IN ($1, $2)",
            "SELECT FEATURES amount",
            "SELECT 1",
            "SELECT * FROM tx WHERE customer_id = $1",
        ):
            assert fastpath.build(store, text) is None, text
        # a catalog change retires the plan; a rebuilt one sees the change
        text = texts[0]
        plan = fastpath.build(store, text)
        assert plan is not None and plan.valid()
        store.sql("ALTER FEATURE GROUP profile SET OFFLINE")
        assert not plan.valid()
        assert fastpath.build(store, text) is None
    finally:
        store.close()


def test_prepared_lookups_over_the_wire(store_path: Path) -> None:
    psycopg = pytest.importorskip("psycopg")
    _online_store(store_path).close()
    server = start_server(store_path, "--auth", "trust")
    try:
        url = f"postgresql://fsql@127.0.0.1:{server.port}/default"
        q = "SELECT FEATURES amount, flag, channel, age, born WHERE customer_id = %s"
        with psycopg.connect(url, autocommit=True, prepare_threshold=0) as c:
            for binary in (False, True):
                for _ in range(2):
                    assert c.execute(q, (2,), binary=binary).fetchall() == [
                        (2, 2 / 3, True, "c2", 21, dt.date(1990, 1, 3))
                    ]
                    assert c.execute(q, (7,), binary=binary).fetchall() == [
                        (7, None, False, "c7", None, None)
                    ]
                    assert c.execute(q, (404,), binary=binary).fetchall() == []
            cur = c.execute(q, (0,))
            assert [d.name for d in cur.description] == [
                "customer_id", "amount", "flag", "channel", "age", "born",
            ]  # fmt: skip
            assert cur.fetchall() == [(0, None, True, None, 20, dt.date(1990, 1, 1))]
            # a key of the wrong type: the normal path's error
            with pytest.raises(psycopg.Error):
                c.execute(q, ("x",))
            # a commit through the server is served at once
            c.execute(
                "INSERT INTO tx VALUES (2, TIMESTAMP '2024-03-01 00:00:00', 99.5, false, 'new')"
            )
            assert c.execute(q, (2,)).fetchall() == [
                (2, 99.5, False, "new", 21, dt.date(1990, 1, 3))
            ]
            # a group turned offline: the same prepared statement is planned
            # again and answered by the offline store, with the same rows
            c.execute("ALTER FEATURE GROUP profile SET OFFLINE")
            q2 = "SELECT FEATURES amount, channel WHERE customer_id = %s"
            assert c.execute(q2, (2,)).fetchall() == [(2, 99.5, "new")]
            assert c.execute(q, (2,)).fetchall() == [
                (2, 99.5, False, "new", 21, dt.date(1990, 1, 3))
            ]
    finally:
        server.stop()
