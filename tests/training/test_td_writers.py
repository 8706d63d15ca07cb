"""Every format writes deterministically and reads back the same rows."""

from __future__ import annotations

import datetime as dt
import decimal
import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from fsql.errors import FeatureNotSupported, InvalidParameter
from fsql.training.writers import FORMATS, get_format

FLAT = pa.table(
    {
        "id": pa.array([1, -2, None, 2**40, 0], pa.int64()),
        "small": pa.array([1, 2, 3, None, -5], pa.int32()),
        "x": pa.array([1.5, None, -2.25, 1e300, float("nan")], pa.float64()),
        "name": pa.array(["a", "", None, 'quote " and, comma', "tab\tnew\nline é"]),
        "ts": pa.array(
            [
                dt.datetime(2024, 1, 1),
                None,
                dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
                dt.datetime(2030, 5, 5, 1, 2, 3, 4),
                dt.datetime(2000, 2, 29),
            ],
            pa.timestamp("us"),
        ),
        "tstz": pa.array(
            [
                dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                None,
                None,
                None,
                dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC),
            ],
            pa.timestamp("us", tz="UTC"),
        ),
        "d": pa.array([dt.date(2024, 1, 1), None, dt.date(1900, 1, 1), dt.date(2024, 2, 29), None]),
        "flag": pa.array([True, False, None, True, False]),
        "price": pa.array(
            [
                decimal.Decimal("1.25"),
                None,
                decimal.Decimal("-3.10"),
                decimal.Decimal("0.00"),
                decimal.Decimal("12345678.99"),
            ],
            pa.decimal128(12, 2),
        ),
    }
)
LISTS = pa.table(
    {
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "vec": pa.array([[1.0, 2.5], [], None, [-3.0]], pa.list_(pa.float64())),
        "tags": pa.array([["a", "b"], ["c"], None, ["", "d"]], pa.list_(pa.string())),
        "ints": pa.array([[1, 2, 3], [-1], None, [0]], pa.list_(pa.int64())),
    }
)


def write(fmt: str, table: pa.Table) -> bytes:
    sink = io.BytesIO()
    get_format(fmt).write(table, sink)
    return sink.getvalue()


def read(fmt: str, data: bytes, schema: pa.Schema) -> pa.Table:
    return get_format(fmt).read(data, schema)


def float32_rounded(table: pa.Table) -> pa.Table:
    """What tf.train.Example (float32 lists) keeps of float columns."""
    cols = []
    for f in table.schema:
        col = table.column(f.name)
        if pa.types.is_floating(f.type):
            col = col.cast(pa.float32(), safe=False).cast(f.type)
        elif pa.types.is_list(f.type) and pa.types.is_floating(f.type.value_type):
            col = col.cast(pa.list_(pa.float32()), safe=False).cast(f.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=table.schema)


def assert_same(got: pa.Table, want: pa.Table) -> None:
    assert got.schema.equals(want.schema), (got.schema, want.schema)
    for name in want.column_names:
        g, w = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if pa.types.is_floating(w.type):
            # NaN != NaN: compare NaN positions, then the rest
            assert pc.is_nan(g).to_pylist() == pc.is_nan(w).to_pylist(), name
            g = pc.if_else(pc.is_nan(g), 0.0, g)
            w = pc.if_else(pc.is_nan(w), 0.0, w)
        assert g.to_pylist() == w.to_pylist(), name


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_flat_columns_round_trip(fmt: str) -> None:
    data = write(fmt, FLAT)
    back = read(fmt, data, FLAT.schema)
    want = float32_rounded(FLAT) if fmt == "tfrecord" else FLAT
    if fmt == "tfrecord":
        # 1e300 is out of float32 range: infinity, as TensorFlow would read it
        assert back.column("x")[3].as_py() == float("inf")
        want = want.set_column(2, "x", back.column("x"))
    assert_same(back, want)


@pytest.mark.parametrize("fmt", ["parquet", "arrow", "npz", "tfrecord"])
def test_list_columns_round_trip(fmt: str) -> None:
    back = read(fmt, write(fmt, LISTS), LISTS.schema)
    want = LISTS
    if fmt == "tfrecord":
        # tf.train.Example cannot tell an empty list from a missing one
        vec = want.column("vec").to_pylist()
        vec[1] = None
        want = want.set_column(1, "vec", pa.array(vec, pa.list_(pa.float64())))
    assert_same(back, want)


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_text_formats_refuse_list_columns(fmt: str) -> None:
    with pytest.raises(FeatureNotSupported) as e:
        write(fmt, LISTS)
    assert e.value.sqlstate == "0A000"
    assert '"vec"' in e.value.message


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_writers_are_deterministic(fmt: str) -> None:
    table = LISTS if fmt not in ("csv", "tsv") else FLAT
    assert write(fmt, table) == write(fmt, table)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_empty_table_round_trips(fmt: str) -> None:
    empty = FLAT.schema.empty_table()
    back = read(fmt, write(fmt, empty), FLAT.schema)
    assert back.num_rows == 0
    assert back.schema.equals(FLAT.schema)


def test_files_open_in_their_native_readers() -> None:
    """Parquet, Arrow IPC (Feather) and npz are read by pyarrow/numpy alone."""
    assert pq.read_table(io.BytesIO(write("parquet", FLAT))).num_rows == 5
    ipc = pa.ipc.open_file(pa.BufferReader(write("arrow", FLAT))).read_all()
    assert ipc.column("name").to_pylist() == FLAT.column("name").to_pylist()
    with np.load(io.BytesIO(write("npz", FLAT)), allow_pickle=False) as npz:
        assert npz["small"].dtype == np.int32
        assert npz["small"].tolist() == [1, 2, 3, 0, -5]
        assert npz["small__null"].tolist() == [False, False, False, True, False]
        assert npz["name"][4] == "tab\tnew\nline é"
        assert npz["ts"].dtype == np.dtype("datetime64[us]")
    csv_text = write("csv", FLAT).decode()
    assert csv_text.splitlines()[0] == '"id","small","x","name","ts","tstz","d","flag","price"'
    tsv_header = write("tsv", FLAT).decode().splitlines()[0]
    assert tsv_header.split("\t")[:2] == ['"id"', '"small"']


def test_format_names_and_aliases() -> None:
    assert get_format("Feather").name == "arrow"
    assert get_format("numpy").name == "npz"
    with pytest.raises(InvalidParameter) as e:
        get_format("xlsx")
    assert e.value.sqlstate == "22023"
    assert "parquet" in (e.value.hint or "")
