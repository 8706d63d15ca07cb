"""A training dataset records the system time it was built at; rebuilding it
later gives the same rows even after inserts, backfills and corrections."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from td_fixtures import day, make_feature_groups

import fsql
from fsql.cli import main

QUERY = (
    "SELECT FEATURES tx.amount, tx.count_7d, tx.country, labels.label FROM labels AS OF labels.ts"
)


def change_everything(store: fsql.Store) -> None:
    """New spine rows, a backfill of old event times, corrections (upserts of
    existing key and event time) and new features rows."""
    tx = store.get_feature_group("tx")
    labels = store.get_feature_group("labels")
    schema = pa.schema(
        [
            ("cid", pa.int64()),
            ("ts", pa.timestamp("us")),
            ("amount", pa.float64()),
            ("count_7d", pa.int64()),
            ("country", pa.string()),
        ]
    )
    # corrections: same (cid, ts) as existing rows, new values
    tx.insert(
        pa.table(
            {
                "cid": [0, 1, 2],
                "ts": [day(0, 0), day(2, 1), day(4, 2)],
                "amount": [-1.0, -2.0, -3.0],
                "count_7d": [999, 999, 999],
                "country": ["xx", "xx", "xx"],
            },
            schema=schema,
        )
    )
    # backfill: event times in the past that were never there
    tx.insert(
        pa.table(
            {
                "cid": [3, 4],
                "ts": [day(1, 5), day(3, 5)],
                "amount": [123.0, 456.0],
                "count_7d": [1, 2],
                "country": ["yy", "yy"],
            },
            schema=schema,
        )
    )
    # new spine rows (labels), including a brand-new customer
    labels.insert(
        pa.table(
            {"cid": [0, 1000], "ts": [day(3), day(5)], "label": [1, 0]},
            schema=pa.schema(
                [("cid", pa.int64()), ("ts", pa.timestamp("us")), ("label", pa.int64())]
            ),
        )
    )


@pytest.mark.parametrize("fmt", ["parquet", "tfrecord"])
def test_rebuild_after_backfill_and_corrections_is_identical(fstore: fsql.Store, fmt: str) -> None:
    original = fstore.create_training_dataset(
        "fraud", QUERY, format=fmt, splits="train:0.8,test:0.2", seed=7
    )
    before = original.read()
    change_everything(fstore)
    now = fstore.sql(QUERY)
    assert now.num_rows == sum(original.split_counts.values()) + 2  # the world did change

    result = fstore.rebuild_training_dataset("fraud", 1)
    assert result.checksum_match, result.as_dict()
    assert result.rows_identical is True
    assert result.split_counts == original.split_counts
    assert original.read().equals(before)

    kept = fstore.rebuild_training_dataset("fraud", 1, location=str(fstore.path / "rebuilt"))
    assert kept.location is not None
    rebuilt_files = sorted(Path(kept.location).rglob(f"*.{fmt}"))
    stored_files = sorted(Path(original.location).rglob(f"*.{fmt}"))
    assert [p.read_bytes() for p in rebuilt_files] == [p.read_bytes() for p in stored_files]

    # a new version sees the new state
    v2 = fstore.create_training_dataset(
        "fraud", QUERY, format=fmt, splits="train:0.8,test:0.2", seed=7
    )
    assert v2.version == 2
    assert v2.row_count == now.num_rows
    assert v2.checksum != original.checksum
    corrected = v2.read().filter(pa.compute.equal(v2.read().column("count_7d"), 999))
    assert corrected.num_rows > 0
    assert before.filter(pa.compute.equal(before.column("count_7d"), 999)).num_rows == 0


def test_rebuild_of_a_plain_sql_dataset(fstore: fsql.Store) -> None:
    original = fstore.create_training_dataset(
        "plain", "SELECT cid, ts, amount FROM tx WHERE amount > 10", splits="a:0.5,b:0.5", seed=1
    )
    change_everything(fstore)
    assert fstore.sql("SELECT count(*) FROM tx WHERE amount > 10").column(0)[0].as_py() != (
        original.row_count
    )
    result = original.rebuild()
    assert result.identical and result.rows_identical


def test_rebuild_restores_deleted_files(fstore: fsql.Store) -> None:
    original = fstore.create_training_dataset(
        "gone", QUERY, format="npz", splits="train:0.5,test:0.5", seed=2
    )
    rows = original.read()
    change_everything(fstore)
    shutil.rmtree(original.location)
    with pytest.raises(fsql.FsqlError) as e:
        original.read()
    assert e.value.sqlstate == "58030"
    result = fstore.rebuild_training_dataset("gone")
    assert result.rows_identical is None and result.restored and result.checksum_match
    assert original.read().equals(rows)
    assert original.verify()


def test_explicit_system_time_in_the_query_is_kept(fstore: fsql.Store) -> None:
    commits = fstore.get_feature_group("tx").commits()
    pinned_us = commits[-1].commit_time_us
    change_everything(fstore)
    from fsql.timeutil import from_micros

    stamp = from_micros(pinned_us).strftime("%Y-%m-%d %H:%M:%S.%f")
    query = f"{QUERY} FOR SYSTEM_TIME AS OF TIMESTAMP '{stamp}'"
    handle = fstore.create_training_dataset("pinned", query)
    assert handle.record.system_time_us == pinned_us
    assert (
        handle.read().filter(pa.compute.equal(handle.read().column("count_7d"), 999)).num_rows == 0
    )


def test_cli_rebuild_and_lineage(store_path: Path) -> None:
    with fsql.connect(store_path) as store:
        make_feature_groups(store)
        store.sql(
            f"CREATE TRAINING DATASET fraud AS {QUERY} "
            "WITH (format = 'tfrecord', splits = 'train:0.8,test:0.2', seed = 7)"
        )
        change_everything(store)
    runner = CliRunner()
    result = runner.invoke(
        main, ["--store", str(store_path), "td", "rebuild", "fraud", "--version", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "matches the recorded one" in result.output
    assert "rows identical to the stored ones" in result.output
    lineage = runner.invoke(main, ["--store", str(store_path), "lineage", "tx", "-f", "csv"])
    assert lineage.exit_code == 0, lineage.output
    assert lineage.output.count("fraud") == 3  # amount, count_7d, country
    listing = runner.invoke(main, ["--store", str(store_path), "td", "list", "-f", "json"])
    assert '"name": "fraud"' in listing.output
    missing = runner.invoke(main, ["--store", str(store_path), "td", "rebuild", "nope"])
    assert missing.exit_code != 0
    assert "42P01" in missing.output


def test_cli_rebuild_reports_a_difference(store_path: Path) -> None:
    """Tampering with the recorded checksum makes the rebuild disagree: the
    command says so and exits with status 1."""
    with fsql.connect(store_path) as store:
        make_feature_groups(store)
        handle = store.create_training_dataset("t", QUERY)
        from sqlalchemy import update

        from fsql.catalog import models

        with store.catalog.engine.begin() as conn:
            conn.execute(
                update(models.training_datasets)
                .where(models.training_datasets.c.id == handle.record.id)
                .values(checksum="sha256:0")
            )
    result = CliRunner().invoke(main, ["--store", str(store_path), "td", "rebuild", "t"])
    assert result.exit_code == 1
    assert "differs from sha256:0" in result.output


def test_python_spine_is_kept_and_rebuilt(fstore: fsql.Store) -> None:
    spine = pa.table(
        {
            "cid": pa.array([0, 1, 2, 3, 0, 5], pa.int64()),
            "ts": pa.array([day(3), day(5), day(7), day(9), day(15), day(2)], pa.timestamp("us")),
            "target": [1, 0, 1, 0, 1, 1],
        }
    )
    query = "SELECT FEATURES tx.amount, tx.country AS OF ts"
    handle = fstore.create_training_dataset("py", query, spine=spine, format="arrow")
    rows = handle.read("all")
    assert rows.num_rows == spine.num_rows
    assert rows.column("target").to_pylist() == spine.column("target").to_pylist()
    assert any(f.endswith("spine.parquet") for f in handle.files())
    assert handle.verify()
    change_everything(fstore)
    result = handle.rebuild()
    assert result.identical and result.rows_identical
    with pytest.raises(fsql.FsqlError) as e:
        fstore.create_training_dataset("bad", "SELECT cid FROM tx", spine=spine)
    assert e.value.sqlstate == "22023"


def test_rebuild_statement(fstore: fsql.Store) -> None:
    fstore.sql(f"CREATE TRAINING DATASET r AS {QUERY} WITH (splits = 'a:0.5,b:0.5', seed = 3)")
    change_everything(fstore)
    out = fstore.sql("REBUILD TRAINING DATASET r VERSION 1").to_pylist()[0]
    assert out["identical"] is True and out["rows_identical"] is True
    assert out["checksum"] == out["recorded_checksum"]
    with pytest.raises(fsql.FsqlError) as e:
        fstore.sql("REBUILD TRAINING DATASET r VERSION 9")
    assert e.value.sqlstate == "42P01"


def test_features_list_form(fstore: fsql.Store) -> None:
    spine = pa.table(
        {"cid": pa.array([1, 2], pa.int64()), "ts": pa.array([day(9), day(11)], pa.timestamp("us"))}
    )
    handle = fstore.create_training_dataset(
        "listed", features=["tx.amount", "count_7d"], spine=spine, as_of="ts"
    )
    assert handle.query == "SELECT FEATURES tx.amount, count_7d AS OF ts"
    assert handle.read("all").column_names == ["cid", "ts", "amount", "count_7d"]
    latest = fstore.create_training_dataset("latest", features=["tx.*"], as_of="2024-01-05")
    assert latest.query == "SELECT FEATURES tx.* AS OF TIMESTAMP '2024-01-05 00:00:00.000000'"
    assert latest.row_count == 40  # one row per customer
    with pytest.raises(fsql.FsqlError) as e:
        fstore.create_training_dataset("bad", features=["tx.amount; DROP"])
    assert e.value.sqlstate == "22023"


def test_a_training_dataset_as_the_spine(fstore: fsql.Store) -> None:
    lab = fstore.create_training_dataset("lab", "SELECT cid, ts, label FROM labels WHERE cid < 10")
    query = "SELECT FEATURES tx.amount, lab.label FROM lab AS OF lab.ts"
    handle = fstore.create_training_dataset("on_td", query, splits="a:0.5,b:0.5", seed=4)
    rows = handle.read()
    assert rows.num_rows == lab.row_count
    assert sorted(rows.column("label").to_pylist()) == sorted(
        lab.read("all").column("label").to_pylist()
    )
    assert any(f.endswith("spine.parquet") for f in handle.files())
    # a new version of the spine dataset and new feature rows change nothing
    fstore.create_training_dataset("lab", "SELECT cid, ts, label FROM labels WHERE cid < 3")
    change_everything(fstore)
    assert handle.rebuild().identical
    again = fstore.create_training_dataset("on_td", query)
    assert again.row_count < handle.row_count  # the latest lab is smaller


def test_rebuild_with_nan_values_is_identical(store: fsql.Store) -> None:
    store.create_feature_group(
        "noisy",
        pa.table(
            {
                "cid": pa.array([1, 2, 3], pa.int64()),
                "x": pa.array([float("nan"), 1.5, None], pa.float64()),
            }
        ),
        primary_key="cid",
    )
    handle = store.create_training_dataset("nan", "SELECT cid, x FROM noisy", format="arrow")
    result = handle.rebuild()
    assert result.rows_identical is True and result.identical
