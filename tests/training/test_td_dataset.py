"""Training datasets end to end: SQL and Python, every format, reading
back, versions, statistics in the catalog, lineage, drop, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import fsql
from fsql.errors import DuplicateObject, FsqlError, InvalidParameter
from fsql.training.writers import FORMATS

QUERY = (
    "SELECT FEATURES tx.amount, tx.count_7d, tx.country, labels.label FROM labels AS OF labels.ts"
)


def td_root(store: fsql.Store) -> Path:
    return store.path / "training_datasets"


def sorted_rows(t: pa.Table) -> list[dict[str, object]]:
    return sorted(t.to_pylist(), key=lambda r: json.dumps(r, default=str, sort_keys=True))


def test_create_with_sql_and_read_back(fstore: fsql.Store) -> None:
    out = fstore.sql(
        f"CREATE TRAINING DATASET fraud DESCRIPTION 'churn v1' AS {QUERY} "
        "WITH (format = 'parquet', splits = 'train:0.8,test:0.2', seed = 7)"
    )
    assert out.column("name").to_pylist() == ["fraud"]
    assert out.column("version").to_pylist() == [1]
    expected = fstore.sql(QUERY)
    assert out.column("rows").to_pylist() == [expected.num_rows]

    all_rows = fstore.sql("SELECT * FROM fraud")
    assert all_rows.column_names == [*expected.column_names, "split"]
    assert sorted_rows(all_rows.drop_columns(["split"])) == sorted_rows(expected)
    train = fstore.sql("SELECT * FROM fraud WHERE split = 'train'")
    test = fstore.sql("SELECT * FROM fraud_v1 WHERE split = 'test'")
    assert train.num_rows + test.num_rows == expected.num_rows
    assert 0.6 < train.num_rows / expected.num_rows < 0.95
    counts = fstore.sql("SELECT split, count(*) AS n FROM fraud GROUP BY split ORDER BY split")
    assert dict(zip(*[counts.column(i).to_pylist() for i in range(2)], strict=True)) == {
        "test": test.num_rows,
        "train": train.num_rows,
    }

    handle = fstore.get_training_dataset("fraud")
    assert handle.read("train").num_rows == train.num_rows
    assert "split" not in handle.read("train").column_names
    assert handle.to_pandas("test").shape == (test.num_rows, len(expected.column_names))
    assert handle.record.description == "churn v1"
    assert handle.record.query == QUERY
    assert handle.verify()
    files = handle.files()
    assert [Path(f).name for f in files] == ["part-00000.parquet"] * 2
    assert all(Path(f).is_relative_to(td_root(fstore) / "fraud" / "v1") for f in files)
    manifest = json.loads((td_root(fstore) / "fraud" / "v1" / "manifest.json").read_text())
    assert manifest["checksum"] == handle.checksum
    assert manifest["split_counts"] == {"train": train.num_rows, "test": test.num_rows}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_round_trips_through_the_store(fstore: fsql.Store, fmt: str) -> None:
    query = "SELECT FEATURES tx.count_7d, tx.country, labels.label FROM labels AS OF labels.ts"
    if fmt == "tfrecord":  # floats go to float32 there; keep to exact columns
        expected = fstore.sql(query)
    else:
        query = QUERY
        expected = fstore.sql(query)
    handle = fstore.create_training_dataset(
        "ds", query, format=fmt, splits="train:0.5,test:0.5", seed=1
    )
    got = handle.read()
    want_schema = pa.schema([f.with_nullable(True) for f in expected.schema])
    assert got.schema.remove(got.schema.get_field_index("split")).equals(want_schema)
    assert sorted_rows(got.drop_columns(["split"])) == sorted_rows(expected)
    assert handle.verify()
    ext = FORMATS[fmt].extension
    assert all(f.endswith(f"part-00000.{ext}") for f in handle.files())


def test_python_api_from_data_and_versions(store: fsql.Store) -> None:
    data = pa.table({"k": list(range(100)), "y": [i % 2 for i in range(100)]})
    v1 = store.create_training_dataset("from_py", data=data, format="csv")
    assert v1.version == 1 and v1.split_counts == {"all": 100}
    assert v1.system_time is None and v1.query is None
    v2 = store.create_training_dataset(
        "from_py", data=data, splits={"train": 0.9, "test": 0.1}, seed=5, label="y"
    )
    assert v2.version == 2
    v7 = store.create_training_dataset("from_py", data=data, version=7)
    assert v7.version == 7
    with pytest.raises(DuplicateObject) as e:
        store.create_training_dataset("from_py", data=data, version=2)
    assert e.value.sqlstate == "42P07"
    assert store.get_training_dataset("from_py").version == 7
    assert store.get_training_dataset("from_py", 2).split_counts["train"] > 80
    listing = store.training_datasets()
    assert listing.column("version").to_pylist() == [1, 2, 7]
    stats = v2.statistics()
    assert stats["*"]["y"]["label_balance"] == [
        {"value": 0, "count": 50, "fraction": 0.5},
        {"value": 1, "count": 50, "fraction": 0.5},
    ]
    assert stats["train"]["k"]["count"] == v2.split_counts["train"]
    with pytest.raises(FsqlError) as e2:
        store.rebuild_training_dataset("from_py", 1)
    assert e2.value.sqlstate == "0A000"


def test_statistics_are_stored_in_the_catalog(fstore: fsql.Store) -> None:
    handle = fstore.create_training_dataset("st", QUERY, splits="train:0.7,test:0.3", seed=3)
    expected = fstore.sql(QUERY)
    amount = expected.column("amount")
    stats = handle.statistics("*")["amount"]
    assert stats["count"] == expected.num_rows
    assert stats["nulls"] == amount.null_count
    assert stats["min"] == pytest.approx(pc.min(amount).as_py())
    assert stats["max"] == pytest.approx(pc.max(amount).as_py())
    assert stats["mean"] == pytest.approx(pc.mean(amount).as_py())
    assert sum(stats["histogram"]["counts"]) == expected.num_rows - amount.null_count
    balance = handle.statistics("train")["label"]["label_balance"]
    assert sum(b["count"] for b in balance) == handle.split_counts["train"]
    described = fstore.sql("DESCRIBE TRAINING DATASET st")
    row = described.filter(pc.equal(described.column("column"), "amount")).to_pylist()[0]
    assert row["feature_group"] == "tx_v1" and row["feature"] == "amount"
    assert row["nulls"] == amount.null_count
    # reopening the store reads the same statistics back from the catalog
    path = fstore.path
    fstore.close()
    with fsql.connect(path) as again:
        assert again.get_training_dataset("st").statistics("*")["amount"] == stats


def test_time_split_from_sql(fstore: fsql.Store) -> None:
    fstore.sql(
        f"CREATE TRAINING DATASET bytime AS {QUERY} "
        "WITH (format = 'arrow', split_by = 'ts', train_until = TIMESTAMP '2024-01-12')"
    )
    train = fstore.sql("SELECT max(ts) AS m FROM bytime WHERE split = 'train'")
    test = fstore.sql("SELECT min(ts) AS m FROM bytime WHERE split = 'test'")
    assert str(train.column(0)[0].as_py()) < "2024-01-12"
    assert str(test.column(0)[0].as_py()) >= "2024-01-12"


def test_lineage_of_feature_groups_and_features(fstore: fsql.Store) -> None:
    fstore.create_training_dataset("a", "SELECT FEATURES tx.amount FROM labels AS OF labels.ts")
    fstore.create_training_dataset(
        "b", "SELECT FEATURES tx.country, labels.label FROM labels AS OF labels.ts"
    )
    fstore.create_training_dataset("c", "SELECT cid, label FROM labels")
    by_fg = fstore.lineage("tx")
    assert sorted(set(by_fg.column("training_dataset").to_pylist())) == ["a", "b"]
    amount = fstore.lineage("amount")
    assert amount.column("training_dataset").to_pylist() == ["a"]
    assert amount.column("feature_group_version").to_pylist() == [1]
    qualified = fstore.lineage("tx.country")
    assert qualified.column("training_dataset").to_pylist() == ["b"]
    labels = fstore.lineage("labels_v1")
    assert set(labels.column("training_dataset").to_pylist()) == {"a", "b", "c"}
    assert fstore.lineage("tx_v2").num_rows == 0
    with pytest.raises(FsqlError) as e:
        fstore.lineage("no_such_thing")
    assert e.value.sqlstate == "42P01"


def test_show_describe_drop(fstore: fsql.Store) -> None:
    fstore.sql(f"CREATE TRAINING DATASET d1 AS {QUERY}")
    fstore.sql(f"CREATE TRAINING DATASET d1 AS {QUERY} WITH (format = 'npz')")
    fstore.sql(f"CREATE TRAINING DATASET other AS {QUERY}")
    shown = fstore.sql("SHOW TRAINING DATASETS LIKE 'd%'")
    assert shown.column("name").to_pylist() == ["d1", "d1"]
    assert shown.column("format").to_pylist() == ["parquet", "npz"]
    assert shown.column("feature_groups").to_pylist()[0] == "labels_v1, tx_v1"
    described = fstore.sql("DESCRIBE TRAINING DATASET d1 VERSION 2")
    assert described.column("column").to_pylist() == fstore.sql(QUERY).column_names
    folder = td_root(fstore) / "d1"
    assert (folder / "v2").is_dir()
    fstore.sql("DROP TRAINING DATASET d1 VERSION 2")
    assert not (folder / "v2").exists()
    assert (folder / "v1").is_dir()
    with pytest.raises(FsqlError) as e:
        fstore.sql("SELECT * FROM d1_v2")
    assert e.value.sqlstate == "42P01"
    fstore.sql("DROP TRAINING DATASET d1")
    assert not (folder / "v1").exists()
    assert not folder.exists()  # the last version took its empty name folder along
    assert fstore.sql("SHOW TRAINING DATASETS").column("name").to_pylist() == ["other"]
    with pytest.raises(FsqlError) as e:
        fstore.sql("DROP TRAINING DATASET d1")
    assert e.value.sqlstate == "42P01"
    assert "skipped" in fstore.sql("DROP TRAINING DATASET IF EXISTS d1").column(0)[0].as_py()


def test_local_location(fstore: fsql.Store, tmp_path: Path) -> None:
    where = tmp_path / "elsewhere"
    fstore.sql(
        f"CREATE TRAINING DATASET loc AS {QUERY} WITH (location = '{where}', format = 'tsv')"
    )
    handle = fstore.get_training_dataset("loc")
    assert handle.location == str(where / "loc" / "v1")
    assert (where / "loc" / "v1" / "all" / "part-00000.tsv").is_file()
    assert not (td_root(fstore) / "loc").exists()
    assert fstore.sql("SELECT count(*) AS n FROM loc").column(0)[0].as_py() == handle.row_count


def registered(store: fsql.Store) -> list[str]:
    return store.training_datasets().column("name").to_pylist()


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize(
    ("options", "sqlstate", "words"),
    [
        ("format = 'xlsx'", "22023", "unknown training dataset format"),
        ("colour = 'red'", "22023", "unknown training dataset option"),
        ("splits = 'train:0.7,test:0.2'", "22023", "sum to 0.9"),
        ("splits = 'train:0.5,test:0.5', seed = 'abc'", "22023", "seed"),
        ("split_by = 'nope', train_until = '2024-01-01'", "42703", "split_by"),
        ("splits = 'a:0.5,b:0.5', split_key = 'nope'", "42703", "split_key"),
        ("format = 'csv', format = 'tsv'", "22023", "twice"),
        ("label = 'nope'", "42703", "label"),
    ],
)
def test_bad_options_register_nothing(
    fstore: fsql.Store, options: str, sqlstate: str, words: str
) -> None:
    with pytest.raises(FsqlError) as e:
        fstore.sql(f"CREATE TRAINING DATASET bad AS {QUERY} WITH ({options})")
    assert e.value.sqlstate == sqlstate
    assert words in e.value.message
    assert registered(fstore) == []
    assert leftovers(td_root(fstore)) == []


def test_unwritable_location(fstore: fsql.Store, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(FsqlError) as e:
        fstore.sql(f"CREATE TRAINING DATASET bad AS {QUERY} WITH (location = '{blocker}/sub')")
    assert e.value.sqlstate in ("58030", "42501")
    assert "not writable" in e.value.message
    assert registered(fstore) == []
    with pytest.raises(InvalidParameter):
        fstore.sql(f"CREATE TRAINING DATASET bad AS {QUERY} WITH (location = 'ftp://host/x')")


def test_failure_while_writing_leaves_nothing(fstore: fsql.Store) -> None:
    """A list column cannot be written as CSV: the failure comes after the
    query, split and statistics, while writing; nothing is registered and no
    file (or temporary folder) remains."""
    fstore.create_feature_group(
        "emb",
        pa.table({"cid": [1, 2], "vec": [[1.0], [2.0, 3.0]]}),
        primary_key="cid",
    )
    with pytest.raises(FsqlError) as e:
        fstore.sql("CREATE TRAINING DATASET bad AS SELECT cid, vec FROM emb WITH (format = 'csv')")
    assert e.value.sqlstate == "0A000"
    assert registered(fstore) == []
    assert leftovers(td_root(fstore)) == []


def test_names_and_versions(fstore: fsql.Store) -> None:
    with pytest.raises(FsqlError) as e:
        fstore.sql(f"CREATE TRAINING DATASET tx AS {QUERY}")
    assert e.value.sqlstate == "42P07"
    fstore.sql(f"CREATE TRAINING DATASET v AS {QUERY}")
    with pytest.raises(FsqlError) as e:
        fstore.sql(f"CREATE TRAINING DATASET v VERSION 1 AS {QUERY}")
    assert e.value.sqlstate == "42P07"
    assert "already exists" in e.value.message
    fstore.sql(f"CREATE TRAINING DATASET v VERSION 3 AS {QUERY}")
    assert fstore.get_training_dataset("v").version == 3
    with pytest.raises(FsqlError) as e:
        fstore.sql("CREATE TRAINING DATASET w AS SELECT FEATURES nope FROM labels AS OF labels.ts")
    assert e.value.sqlstate == "42703"
    with pytest.raises(FsqlError) as e:
        fstore.sql("CREATE TRAINING DATASET w AS SELECT 1 AS split")
    assert e.value.sqlstate == "42701"
    with pytest.raises(FsqlError) as e:
        fstore.sql("CREATE TRAINING DATASET w WITH (format = 'csv')")
    assert e.value.sqlstate == "42601"
    with pytest.raises(FsqlError) as e:
        fstore.get_training_dataset("v", 2)
    assert e.value.sqlstate == "42P01" and "Versions: 1, 3" in (e.value.hint or "")


def test_orphan_folder_of_a_crashed_build_is_replaced(fstore: fsql.Store) -> None:
    """Files whose catalog entry was never written (a crash between the
    rename and the registration) do not block the version."""
    handle = fstore.create_training_dataset("orph", QUERY)
    folder = Path(handle.location)
    copy = folder.parent / "keep"
    os.rename(folder, copy)
    fstore.sql("DROP TRAINING DATASET orph")
    os.rename(copy, folder)  # the files are back, unregistered
    again = fstore.create_training_dataset("orph", QUERY)
    assert again.version == 1 and again.verify()
    stranger = td_root(fstore) / "orph" / "v2"
    stranger.mkdir()
    (stranger / "data.bin").write_bytes(b"someone else's")
    with pytest.raises(FsqlError) as e:
        fstore.create_training_dataset("orph", QUERY)
    assert e.value.sqlstate == "42P07"
    assert (stranger / "data.bin").read_bytes() == b"someone else's"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_an_empty_result_is_a_valid_dataset(fstore: fsql.Store, fmt: str) -> None:
    handle = fstore.create_training_dataset(
        "empty", "SELECT cid, ts, amount FROM tx WHERE cid < 0", format=fmt,
        splits="train:0.5,test:0.5", seed=1,
    )  # fmt: skip
    assert handle.split_counts == {"train": 0, "test": 0}
    assert handle.read().num_rows == 0
    assert handle.read("train").schema.names == ["cid", "ts", "amount"]
    assert handle.statistics("*")["amount"]["count"] == 0
    assert handle.rebuild().identical


def test_parameters_are_refused_with_a_reason(fstore: fsql.Store) -> None:
    with pytest.raises(FsqlError) as e:
        fstore.sql("CREATE TRAINING DATASET p AS SELECT cid FROM tx WHERE cid = $1", params=[1])
    assert e.value.sqlstate == "0A000"
    assert registered(fstore) == []


def test_concurrent_creates_get_distinct_versions(fstore: fsql.Store) -> None:
    import threading

    results: list[object] = []

    def build() -> None:
        try:
            results.append(fstore.create_training_dataset("conc", QUERY, format="arrow").version)
        except Exception as e:  # pragma: no cover - reported below
            results.append(e)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [1, 2, 3]  # type: ignore[type-var]
    for v in (1, 2, 3):
        assert fstore.get_training_dataset("conc", v).verify()


def test_os_error_while_writing_is_58030_naming_the_path(
    fstore: fsql.Store, tmp_path: Path
) -> None:
    """The location passes the probe, but the dataset's own folder is a
    regular file: creating the split folder fails (ENOTDIR, also for root)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "blocked").write_text("a file where the dataset folder goes")
    with pytest.raises(FsqlError) as e:
        fstore.sql(f"CREATE TRAINING DATASET blocked AS {QUERY} WITH (location = '{out}')")
    err = e.value
    assert err.sqlstate == "58030"
    assert err.message.startswith(f'could not write "{out}/blocked/.v1.tmp-')
    assert err.message.endswith('for training dataset "blocked" version 1: Not a directory')
    assert "nothing was registered" in (err.hint or "").lower()
    assert registered(fstore) == []
    assert leftovers(out) == ["blocked"]  # only the file that was in the way


def test_os_error_after_the_files_are_written_removes_them(
    fstore: fsql.Store, tmp_path: Path
) -> None:
    """Every file is written, then renaming the temporary folder into place
    fails (v1 is a dangling symlink: ENOTDIR, also for root): the temporary
    folder with its files goes, nothing is registered."""
    out = tmp_path / "out"
    (out / "late").mkdir(parents=True)
    (out / "late" / "v1").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FsqlError) as e:
        fstore.sql(f"CREATE TRAINING DATASET late AS {QUERY} WITH (location = '{out}')")
    err = e.value
    assert err.sqlstate == "58030"
    assert err.message == (
        f'could not write "{out}/late/v1" for training dataset "late" version 1: Not a directory'
    )
    assert registered(fstore) == []
    assert leftovers(out) == ["late", "late/v1"]  # no .v1.tmp-* folder
    # once the way is clear the same create works
    (out / "late" / "v1").unlink()
    fstore.sql(f"CREATE TRAINING DATASET late AS {QUERY} WITH (location = '{out}')")
    assert registered(fstore) == ["late"]
