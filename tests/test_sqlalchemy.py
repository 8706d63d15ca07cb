"""The SQLAlchemy dialect fsql:// (in-process) with reflection and pandas."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

import fsql


@pytest.fixture
def engine(store_path: Path):  # type: ignore[no-untyped-def]
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
                }
            ),
            primary_key="customer_id",
            event_time="ts",
            description="transactions",
            features={"amount": "money spent"},
        )
    finally:
        store.close()
    eng = sa.create_engine(f"fsql:///{store_path}")
    try:
        yield eng
    finally:
        eng.dispose()


def test_create_engine_and_inspect(engine: sa.Engine) -> None:
    assert engine.dialect.name == "fsql"
    insp = sa.inspect(engine)
    assert insp.get_table_names() == ["tx", "tx_v1"]
    assert insp.has_table("tx") and not insp.has_table("nope")
    cols = {c["name"]: c for c in insp.get_columns("tx")}
    assert isinstance(cols["amount"]["type"], sa.Float)
    assert isinstance(cols["ts"]["type"], sa.TIMESTAMP)
    assert cols["amount"]["comment"] == "money spent"
    assert cols["customer_id"]["nullable"] is False
    assert insp.get_pk_constraint("tx")["constrained_columns"] == ["customer_id"]
    assert insp.get_table_comment("tx")["text"] == "transactions"


def test_reflected_table_and_core_select(engine: sa.Engine) -> None:
    with engine.connect() as c:
        t = sa.Table("tx", sa.MetaData(), autoload_with=c)
        assert [col.name for col in t.columns] == ["customer_id", "ts", "amount"]
        stmt = sa.select(t.c.amount).where(t.c.customer_id == 1).order_by(t.c.ts)
        assert c.execute(stmt).scalars().all() == [1.5, 3.5]
        got = c.execute(
            sa.text("SELECT amount FROM tx WHERE customer_id = :c ORDER BY ts"), {"c": 2}
        )
        assert got.fetchall() == [(2.5,)]


def test_pandas_read_sql(engine: sa.Engine) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.read_sql("SELECT customer_id, amount FROM tx ORDER BY ts", engine)
    assert df["amount"].tolist() == [1.5, 2.5, 3.5]
    df = pd.read_sql(sa.text("SELECT FEATURES amount"), engine)
    assert sorted(df["amount"].tolist()) == [2.5, 3.5]
