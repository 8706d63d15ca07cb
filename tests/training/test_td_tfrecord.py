"""TFRecord files written without TensorFlow, checked by independent code:
the ``crc32c`` package (CRC-32C, another implementation than the writer's)
for the framing, and protobuf's own parser with tf.train.Example's schema
(shipped by the ``tfrecord`` package) for the records."""

from __future__ import annotations

import datetime as dt
import io
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fsql.training import tfrecord as tfr

crc32c = pytest.importorskip("crc32c")
example_pb2 = pytest.importorskip("tfrecord.example_pb2")
tfrecord_reader = pytest.importorskip("tfrecord.reader")

TABLE = pa.table(
    {
        "cid": pa.array([7, -1, None, 2**62], pa.int64()),
        "amount": pa.array([1.5, None, -0.25, 3e9], pa.float64()),
        "country": pa.array(["de", "", None, "ünï"]),
        "ts": pa.array(
            [
                dt.datetime(2024, 1, 1),
                dt.datetime(1960, 1, 1),
                None,
                dt.datetime(2024, 1, 1, 0, 0, 1),
            ],
            pa.timestamp("us"),
        ),
        "flag": pa.array([True, False, None, True]),
        "emb": pa.array([[0.5, 1.0, 2.0], [], None, [-1.0]], pa.list_(pa.float32())),
    }
)


def independent_masked_crc(data: bytes) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def framed_records(data: bytes) -> list[bytes]:
    """Parse TFRecord framing by hand, checking both CRCs independently."""
    out, pos = [], 0
    while pos < len(data):
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        assert header_crc == independent_masked_crc(header)
        record = data[pos + 12 : pos + 12 + length]
        (data_crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
        assert data_crc == independent_masked_crc(record)
        out.append(record)
        pos += 16 + length
    assert pos == len(data)
    return out


def encoded() -> bytes:
    sink = io.BytesIO()
    tfr.write(TABLE, sink)
    return sink.getvalue()


def test_crc32c_matches_the_standard_check_value() -> None:
    # CRC-32C("123456789") = 0xE3069283 (RFC 3720)
    assert tfr.crc32c(b"123456789") == 0xE3069283


def test_framing_and_checksums_verified_independently() -> None:
    records = framed_records(encoded())
    assert len(records) == TABLE.num_rows


def test_protobuf_parses_every_record_as_tf_train_example() -> None:
    rows = TABLE.to_pylist()
    for record, row in zip(framed_records(encoded()), rows, strict=True):
        ex = example_pb2.Example()
        ex.ParseFromString(record)
        feats = ex.features.feature
        assert set(feats) == set(TABLE.column_names)
        assert list(feats["cid"].int64_list.value) == (
            [row["cid"]] if row["cid"] is not None else []
        )
        if row["amount"] is None:
            assert feats["amount"].HasField("float_list")
            assert list(feats["amount"].float_list.value) == []
        else:
            assert feats["amount"].float_list.value[0] == pytest.approx(row["amount"], rel=1e-7)
        want = [row["country"].encode()] if row["country"] is not None else []
        assert list(feats["country"].bytes_list.value) == want
        if row["ts"] is not None:
            us = (row["ts"] - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
            assert list(feats["ts"].int64_list.value) == [us]
        flag = [int(row["flag"])] if row["flag"] is not None else []
        assert list(feats["flag"].int64_list.value) == flag
        assert list(feats["emb"].float_list.value) == (row["emb"] or [])


def test_the_tfrecord_package_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "part.tfrecord"
    path.write_bytes(encoded())
    rows = list(tfrecord_reader.tfrecord_loader(str(path), None))
    assert len(rows) == 4
    assert rows[0]["cid"].tolist() == [7]
    assert rows[3]["cid"].tolist() == [2**62]
    assert rows[0]["country"] == b"de"
    assert rows[3]["country"] == "ünï".encode()
    np.testing.assert_allclose(rows[0]["emb"], [0.5, 1.0, 2.0])
    assert rows[1]["amount"].size == 0  # NULL: an empty list


def test_many_rows_and_long_varints_survive_the_vectorized_encoder() -> None:
    n = 3000
    rng = np.random.default_rng(3)
    ints = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
    text = [("x" * int(k)) for k in rng.integers(0, 300, n)]  # lengths need two-byte varints
    table = pa.table({"i": ints, "t": text})
    sink = io.BytesIO()
    tfr.write(table, sink, batch_rows=1000)
    records = framed_records(sink.getvalue())
    assert len(records) == n
    for k in (0, 1, 1500, n - 1):
        ex = example_pb2.Example.FromString(records[k])
        assert ex.features.feature["i"].int64_list.value[0] == int(ints[k])
        assert ex.features.feature["t"].bytes_list.value[0] == text[k].encode()
    back = tfr.read(sink.getvalue(), table.schema)
    assert back.equals(table)


def test_a_flipped_byte_is_detected() -> None:
    data = bytearray(encoded())
    data[20] ^= 0xFF
    with pytest.raises(tfr.CorruptRecord) as e:
        tfr.read(bytes(data), TABLE.schema)
    assert e.value.sqlstate == "XX001"


def test_fast_numeric_path_and_long_keys_agree_with_protobuf() -> None:
    """Numeric columns with NULLs go through the numpy encoder; a key too long
    for one-byte lengths goes through the general one. Both parse."""
    long_key = "k" * 130
    n = 500
    rng = np.random.default_rng(5)
    ints = rng.integers(-(2**62), 2**62, n, dtype=np.int64)
    mask = rng.random(n) < 0.3
    table = pa.table(
        {
            "i": pa.array(ints, mask=mask),
            "f": pa.array(rng.normal(size=n), mask=mask),
            "b": pa.array(rng.random(n) < 0.5, mask=mask),
            "d": pa.array(rng.integers(0, 20000, n).astype("datetime64[D]"), mask=mask),
            long_key: pa.array(ints, mask=mask),
        }
    )
    sink = io.BytesIO()
    tfr.write(table, sink)
    records = framed_records(sink.getvalue())
    rows = table.to_pylist()
    for k in range(0, n, 37):
        feats = example_pb2.Example.FromString(records[k]).features.feature
        want = rows[k]["i"]
        assert list(feats["i"].int64_list.value) == ([] if want is None else [want])
        assert list(feats[long_key].int64_list.value) == ([] if want is None else [want])
        flag = rows[k]["b"]
        assert list(feats["b"].int64_list.value) == ([] if flag is None else [int(flag)])
        if rows[k]["f"] is not None:
            assert feats["f"].float_list.value[0] == pytest.approx(rows[k]["f"], rel=1e-6)
    back = tfr.read(sink.getvalue(), table.schema)
    assert back.column("i").equals(table.column("i"))
    assert back.column(long_key).equals(table.column(long_key))
    assert back.column("d").equals(table.column("d"))
