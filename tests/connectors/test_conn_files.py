"""On-demand feature groups over Parquet and CSV files on disk."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from fsql.errors import FsqlError


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    pq.write_table(
        pa.table(
            {
                "id": pa.array([1, 1, 2], pa.int64()),
                "score": [0.5, 0.7, None],
                "label": ["a", "b", None],
                "ts": pa.array(
                    [dt.datetime(2024, 1, 1), dt.datetime(2024, 2, 1), dt.datetime(2024, 1, 10)],
                    pa.timestamp("us"),
                ),
            }
        ),
        folder / "scores.parquet",
    )
    pacsv.write_csv(
        pa.table({"id": [1, 2], "city": ["Oslo", "Lima"], "pop": [700000, 10000000]}),
        folder / "cities.csv",
    )
    return folder


def test_parquet_and_csv(store, files):
    store.sql(f"CREATE CONNECTOR lake TYPE files OPTIONS (path '{files}')")
    store.sql(
        "CREATE ON DEMAND FEATURE GROUP scores CONNECTOR lake PRIMARY KEY (id) EVENT TIME ts "
        "AS SELECT id, score, label, ts FROM scores"
    )
    store.sql(
        "CREATE ON DEMAND FEATURE GROUP cities CONNECTOR lake PRIMARY KEY (id) "
        'AS SELECT id, city, pop FROM "cities.csv"'
    )
    types = {f.name: f.type for f in store.get_feature_group("scores").features}
    assert types == {
        "id": "bigint",
        "score": "double precision",
        "label": "text",
        "ts": "timestamp",
    }
    assert store.sql("SELECT * FROM scores ORDER BY id, ts").to_pylist() == [
        {"id": 1, "score": 0.5, "label": "a", "ts": dt.datetime(2024, 1, 1)},
        {"id": 1, "score": 0.7, "label": "b", "ts": dt.datetime(2024, 2, 1)},
        {"id": 2, "score": None, "label": None, "ts": dt.datetime(2024, 1, 10)},
    ]
    assert store.sql("SELECT city FROM cities WHERE id = 2").to_pylist() == [{"city": "Lima"}]
    # point-in-time and latest values across both file groups
    got = store.sql("SELECT FEATURES score, city AS OF TIMESTAMP '2024-01-15'").to_pylist()
    assert got == [
        {"id": 1, "score": 0.5, "city": "Oslo"},
        {"id": 2, "score": None, "city": "Lima"},
    ]
    # new files are seen on the next read: nothing was copied
    pq.write_table(
        pa.table(
            {
                "id": pa.array([3], pa.int64()),
                "score": [0.9],
                "label": ["c"],
                "ts": pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us")),
            }
        ),
        files / "scores.parquet",
    )
    assert store.sql("SELECT id FROM scores").to_pylist() == [{"id": 3}]


def test_missing_file_and_escape(store, files):
    store.create_connector("lake", "files", {"path": str(files)})
    with pytest.raises(FsqlError) as e:
        store.create_on_demand_feature_group(
            "x", connector="lake", query="SELECT * FROM nope", primary_key="id"
        )
    assert e.value.sqlstate == "58P01" and "nope.parquet" in str(e.value)
    assert 'connector "lake"' in str(e.value)
    with pytest.raises(FsqlError) as e:
        store.create_on_demand_feature_group(
            "x", connector="lake", query='SELECT * FROM "../secret.csv"', primary_key="id"
        )
    assert e.value.sqlstate == "42501"
    assert store.feature_groups() == []
    with pytest.raises(FsqlError) as e:
        store.create_connector("gone", "files", {"path": str(files / "missing")})
    assert e.value.sqlstate == "58P01"


def test_vanished_file(store, files):
    store.create_connector("lake", "files", {"path": str(files)})
    store.create_on_demand_feature_group(
        "c", connector="lake", query='SELECT id, city FROM "cities.csv"', primary_key="id"
    )
    (files / "cities.csv").unlink()
    with pytest.raises(FsqlError) as e:
        store.sql("SELECT * FROM c")
    assert e.value.sqlstate == "58P01" and "cities.csv" in str(e.value)


@pytest.fixture
def s3_lake(monkeypatch):
    """A real S3-compatible server (moto) on 127.0.0.1 with a bucket "lake"."""
    import io
    import socket

    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("FSQL_TEST_S3_SECRET", "testing-secret")
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    )
    client.create_bucket(Bucket="lake")

    def put(key: str, table: pa.Table) -> None:
        buf = io.BytesIO()
        pq.write_table(table, buf)
        client.put_object(Bucket="lake", Key=key, Body=buf.getvalue())

    try:
        yield endpoint, put
    finally:
        server.stop()


def test_parquet_in_object_storage(store, s3_lake):
    endpoint, put = s3_lake
    put(
        "features/scores.parquet",
        pa.table(
            {
                "id": pa.array([1, 2], pa.int64()),
                "score": [0.5, 0.25],
                "ts": pa.array(
                    [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)], pa.timestamp("us")
                ),
            }
        ),
    )
    store.sql(
        "CREATE CONNECTOR lake TYPE files OPTIONS (url 's3://lake/features', "
        f"endpoint '{endpoint}', access_key_id 'testing', password_env 'FSQL_TEST_S3_SECRET')"
    )
    store.sql(
        "CREATE ON DEMAND FEATURE GROUP scores CONNECTOR lake PRIMARY KEY (id) EVENT TIME ts "
        "AS SELECT id, score, ts FROM scores"
    )
    types = {f.name: f.type for f in store.get_feature_group("scores").features}
    assert types == {"id": "bigint", "score": "double precision", "ts": "timestamp"}
    assert store.sql("SELECT id, score FROM scores ORDER BY id").to_pylist() == [
        {"id": 1, "score": 0.5},
        {"id": 2, "score": 0.25},
    ]
    plan = "\n".join(store.sql("EXPLAIN SELECT * FROM scores").column(0).to_pylist())
    assert "testing-secret" not in plan and "fsql_secret_" in plan
    with pytest.raises(FsqlError) as e:
        store.sql(
            "CREATE ON DEMAND FEATURE GROUP nope CONNECTOR lake PRIMARY KEY (id) "
            "AS SELECT * FROM nope"
        )
    assert e.value.sqlstate == "58P01" and 'connector "lake"' in str(e.value)
    assert "testing-secret" not in str(e.value)
    with pytest.raises(FsqlError) as e:
        store.sql(
            "CREATE ON DEMAND FEATURE GROUP esc CONNECTOR lake PRIMARY KEY (id) "
            'AS SELECT * FROM "../other/x.parquet"'
        )
    assert e.value.sqlstate == "42501"
