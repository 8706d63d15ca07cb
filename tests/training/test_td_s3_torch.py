"""Training datasets in S3-compatible object storage (a real moto server on
127.0.0.1), and the PyTorch reader."""

from __future__ import annotations

import pyarrow as pa
import pytest

import fsql

QUERY = "SELECT FEATURES tx.amount, tx.count_7d, labels.label FROM labels AS OF labels.ts"


def objects(endpoint: str, prefix: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://{endpoint}", region_name="us-east-1")
    listed = client.list_objects_v2(Bucket="fsql-td", Prefix=prefix)
    # directory markers ("a/b/") are how pyarrow makes folders; count files only
    return sorted(o["Key"] for o in listed.get("Contents", []) if not o["Key"].endswith("/"))


@pytest.mark.parametrize("fmt", ["parquet", "tfrecord"])
def test_s3_location_round_trip_rebuild_and_drop(
    fstore: fsql.Store, s3_server: str, fmt: str
) -> None:
    location = f"s3://fsql-td/team/datasets?endpoint_override={s3_server}&scheme=http"
    fstore.sql(
        f"CREATE TRAINING DATASET remote AS {QUERY} "
        f"WITH (format = '{fmt}', splits = 'train:0.8,test:0.2', seed = 7, location = '{location}')"
    )
    handle = fstore.get_training_dataset("remote")
    assert handle.location.startswith("s3://fsql-td/team/datasets/remote/v1")
    assert "secret" not in handle.location
    keys = objects(s3_server, "team/datasets/remote/v1/")
    assert keys == [
        "team/datasets/remote/v1/manifest.json",
        f"team/datasets/remote/v1/test/part-00000.{fmt}",
        f"team/datasets/remote/v1/train/part-00000.{fmt}",
    ]
    expected = fstore.sql(QUERY)
    back = fstore.sql("SELECT * FROM remote ORDER BY cid, ts")
    assert back.num_rows == expected.num_rows
    assert (
        back.column("label").to_pylist()
        == expected.sort_by([("cid", "ascending"), ("ts", "ascending")]).column("label").to_pylist()
    )
    assert handle.verify()
    assert handle.rebuild().identical
    fstore.sql("DROP TRAINING DATASET remote")
    assert objects(s3_server, "team/datasets/remote/") == []


def test_s3_endpoint_from_the_environment(
    fstore: fsql.Store, s3_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{s3_server}")
    handle = fstore.create_training_dataset("env", QUERY, location="s3://fsql-td/env", format="csv")
    assert handle.location == "s3://fsql-td/env/env/v1"
    assert objects(s3_server, "env/env/v1/all/") == ["env/env/v1/all/part-00000.csv"]
    assert handle.read("all").num_rows == handle.row_count


def test_s3_bucket_that_does_not_exist(fstore: fsql.Store, s3_server: str) -> None:
    location = f"s3://no-such-bucket/x?endpoint_override={s3_server}&scheme=http"
    with pytest.raises(fsql.FsqlError) as e:
        fstore.create_training_dataset("nob", QUERY, location=location)
    assert e.value.sqlstate in ("58030", "42501")
    assert "not writable" in e.value.message
    assert fstore.training_datasets().num_rows == 0
    with pytest.raises(fsql.FsqlError) as e:
        fstore.create_training_dataset("nob", QUERY, location="s3://fsql-td/x?colour=red")
    assert e.value.sqlstate == "22023"


def test_torch_iterable_dataset(fstore: fsql.Store) -> None:
    torch = pytest.importorskip("torch", reason="the torch extra is not installed")
    from torch.utils.data import DataLoader

    handle = fstore.create_training_dataset(
        "t", "SELECT FEATURES tx.count_7d, labels.label FROM labels AS OF labels.ts",
        format="arrow", splits="train:0.8,test:0.2", seed=7,
    )  # fmt: skip
    train = handle.read("train")
    rows = list(handle.torch("train"))
    assert len(rows) == train.num_rows
    assert rows[0]["label"].dtype == torch.int64
    assert [int(r["count_7d"]) for r in rows] == train.column("count_7d").to_pylist()
    assert [int(r["ts"]) for r in rows][:1] == [train.column("ts").cast(pa.int64()).to_pylist()[0]]
    batches = list(DataLoader(handle.torch("train", batch_size=16), batch_size=None))
    assert len(batches) == len(handle.torch("train", batch_size=16))
    assert sum(len(b["label"]) for b in batches) == train.num_rows
    assert torch.equal(
        torch.cat([b["label"] for b in batches]),
        torch.tensor(train.column("label").to_pylist()),
    )
    with pytest.raises(fsql.FsqlError):
        handle.torch()  # two splits: name one
    with pytest.raises(fsql.FsqlError) as e:
        fstore.create_training_dataset(
            "nulls", data=pa.table({"k": pa.array([1, None], pa.int64())})
        ).torch().__iter__().__next__()
    assert "NULL" in e.value.message


def test_torch_with_two_workers_reads_each_row_once(fstore: fsql.Store) -> None:
    pytest.importorskip("torch", reason="the torch extra is not installed")
    from torch.utils.data import DataLoader

    from fsql.training import torch as td_torch

    handle = fstore.create_training_dataset("w", QUERY, format="parquet")
    loader = DataLoader(
        td_torch.TrainingIterable(handle.record, "all", batch_size=7, columns=["cid", "label"]),
        batch_size=None,
        num_workers=2,
    )
    seen = sorted(int(x) for b in loader for x in b["cid"])
    assert seen == sorted(handle.read("all").column("cid").to_pylist())
