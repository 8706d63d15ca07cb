"""Fixtures for training-dataset tests: a store with two feature groups
(transactions and labels) and a local S3-compatible server."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from td_fixtures import make_feature_groups

import fsql


@pytest.fixture
def fstore(store: fsql.Store) -> fsql.Store:
    make_feature_groups(store)
    return store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3-compatible server (moto) on 127.0.0.1; yields its endpoint
    (host:port) with a bucket ``fsql-td`` created and credentials in the
    environment."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    endpoint = f"127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=f"http://{endpoint}", region_name="us-east-1")
    client.create_bucket(Bucket="fsql-td")
    try:
        yield endpoint
    finally:
        server.stop()
