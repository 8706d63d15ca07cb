"""One writer (and reader) per training-dataset format.

Every writer is deterministic: the same table gives the same bytes, so a
dataset's checksum (over its files) identifies its content, and a rebuild
can be compared byte for byte. Readers take the schema recorded in the
catalog and give the rows back with their original types.

========  ==========================================  =====================
format    file                                        read by
========  ==========================================  =====================
parquet   ``part-00000.parquet`` (snappy)             pandas, polars, Spark
csv/tsv   ``part-00000.csv`` / ``.tsv``, header row   anything
arrow     ``part-00000.arrow`` (IPC file = Feather    pandas, polars, Ray
          v2, lz4)
npz       ``part-00000.npz``: one array per column,   ``numpy.load``
          ``<col>__null`` masks where NULLs occur,
          ``<col>__offsets`` for list columns
tfrecord  ``part-00000.tfrecord`` of tf.train.Example  TensorFlow, tfrecord
========  ==========================================  =====================
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from fsql.errors import FeatureNotSupported, InvalidParameter
from fsql.training import tfrecord


@dataclass(frozen=True)
class Format:
    name: str
    extension: str
    write: Callable[[pa.Table, BinaryIO], None]
    read: Callable[[bytes, pa.Schema], pa.Table]
    description: str


# parquet ------------------------------------------------------------------


def _write_parquet(table: pa.Table, sink: BinaryIO) -> None:
    pq.write_table(table, sink, compression="snappy", row_group_size=1 << 20)


def _read_parquet(data: bytes, schema: pa.Schema) -> pa.Table:
    return pq.read_table(pa.BufferReader(data)).cast(schema)


# csv / tsv ----------------------------------------------------------------


def _check_flat(table: pa.Table, fmt: str) -> None:
    for f in table.schema:
        if pa.types.is_nested(f.type):
            raise FeatureNotSupported(
                f'column "{f.name}" ({f.type}) cannot be written as {fmt}',
                hint="Use parquet, arrow, npz or tfrecord for list columns.",
            )


def _csv_writer(delimiter: str) -> Callable[[pa.Table, BinaryIO], None]:
    def write(table: pa.Table, sink: BinaryIO) -> None:
        _check_flat(table, "tsv" if delimiter == "\t" else "csv")
        # strings are always quoted and NULL is an empty unquoted field, so
        # NULL and '' stay apart on the way back
        options = pcsv.WriteOptions(include_header=True, delimiter=delimiter)
        pcsv.write_csv(_csv_safe(table), sink, write_options=options)

    return write


def _csv_safe(table: pa.Table) -> pa.Table:
    """Binary columns as hex text (CSV holds text)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type):
            hexed = pa.array(
                [None if v is None else v.hex() for v in table.column(i).to_pylist()], pa.string()
            )
            table = table.set_column(i, f.name, hexed)
    return table


def _csv_reader(delimiter: str) -> Callable[[bytes, pa.Schema], pa.Table]:
    def read(data: bytes, schema: pa.Schema) -> pa.Table:
        types = {}
        for f in schema:
            binary = pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
            types[f.name] = pa.string() if binary else f.type
        convert = pcsv.ConvertOptions(
            column_types=types,
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        table = pcsv.read_csv(
            pa.BufferReader(data),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=convert,
        )
        for i, f in enumerate(schema):
            if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type):
                raw = [None if v is None else bytes.fromhex(v) for v in table.column(i).to_pylist()]
                table = table.set_column(i, f.name, pa.array(raw, f.type))
        return table.select(schema.names).cast(schema)

    return read


# arrow IPC (Feather v2) ---------------------------------------------------


def _write_arrow(table: pa.Table, sink: BinaryIO) -> None:
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=1 << 16)


def _read_arrow(data: bytes, schema: pa.Schema) -> pa.Table:
    return pa.ipc.open_file(pa.BufferReader(data)).read_all().cast(schema)


# numpy .npz ---------------------------------------------------------------

NULL_SUFFIX = "__null"
OFFSETS_SUFFIX = "__offsets"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same data gives the same bytes


def _numpy_values(arr: pa.Array) -> np.ndarray:
    """A NULL-free numpy array of ``arr`` (NULLs filled with a zero value)."""
    t = arr.type
    if pa.types.is_decimal(t):
        arr = arr.cast(pa.string())
        t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        values = arr.fill_null("").to_numpy(zero_copy_only=False)
        width = max(1, int(pc.max(pc.utf8_length(arr)).as_py() or 0)) if len(arr) else 1
        return values.astype(f"<U{width}")
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        values = arr.fill_null(b"").to_numpy(zero_copy_only=False)
        width = max(1, int(pc.max(pc.binary_length(arr)).as_py() or 0)) if len(arr) else 1
        return values.astype(f"S{width}")
    if pa.types.is_timestamp(t):
        filled = arr.fill_null(pa.scalar(0, pa.int64()).cast(t)) if arr.null_count else arr
        return filled.cast(pa.timestamp(t.unit)).to_numpy(zero_copy_only=False)
    if pa.types.is_date(t):
        filled = arr.fill_null(pa.scalar(0, pa.int32()).cast(pa.date32()).cast(t))
        return filled.to_numpy(zero_copy_only=False).astype("datetime64[D]")
    if pa.types.is_floating(t):
        return arr.to_numpy(zero_copy_only=False)  # NULL -> NaN
    if pa.types.is_boolean(t):
        return arr.fill_null(False).to_numpy(zero_copy_only=False).astype(np.bool_)
    if pa.types.is_integer(t) or pa.types.is_duration(t) or pa.types.is_time(t):
        filled = arr.fill_null(0) if arr.null_count else arr
        return filled.to_numpy(zero_copy_only=False)
    raise FeatureNotSupported(
        f"type {t} cannot be written to npz", hint="Use parquet or arrow for this column."
    )


def _write_npz(table: pa.Table, sink: BinaryIO) -> None:
    arrays: list[tuple[str, np.ndarray]] = []
    for name in table.column_names:
        arr = table.column(name).combine_chunks()
        if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
            flat = arr.flatten()
            offsets = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False)
            arrays.append((name, _numpy_values(flat)))
            arrays.append((name + OFFSETS_SUFFIX, np.concatenate([[0], np.cumsum(offsets)])))
        elif pa.types.is_nested(arr.type):
            raise FeatureNotSupported(f'column "{name}" ({arr.type}) cannot be written to npz')
        else:
            arrays.append((name, _numpy_values(arr)))
        if arr.null_count:
            arrays.append((name + NULL_SUFFIX, arr.is_null().to_numpy(zero_copy_only=False)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, value in arrays:
            info = zipfile.ZipInfo(key + ".npy", date_time=_ZIP_TIME)
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    sink.write(buf.getvalue())


def _from_numpy(values: np.ndarray, t: pa.DataType) -> pa.Array:
    if pa.types.is_decimal(t):
        text = [v or "0" for v in values.astype(str).tolist()]  # NULLs were '': masked below
        return pa.array(text, pa.string()).cast(t)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pa.array(values.tolist(), t)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.array(values.tolist(), t)
    if pa.types.is_timestamp(t):
        return pa.array(values.astype(f"datetime64[{t.unit}]")).cast(t)
    if pa.types.is_date(t):
        return pa.array(values.astype("datetime64[D]")).cast(t)
    return pa.array(values).cast(t)


def _read_npz(data: bytes, schema: pa.Schema) -> pa.Table:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = []
        for f in schema:
            values = npz[f.name]
            mask = npz[f.name + NULL_SUFFIX] if f.name + NULL_SUFFIX in npz.files else None
            if pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
                inner = _from_numpy(values, f.type.value_type)
                offsets = pa.array(npz[f.name + OFFSETS_SUFFIX].astype(np.int32))
                arr: pa.Array = pa.ListArray.from_arrays(
                    offsets, inner, mask=pa.array(mask) if mask is not None else None
                ).cast(f.type)
            else:
                arr = _from_numpy(values, f.type)
                if mask is not None:
                    arr = pc.if_else(pa.array(mask), pa.scalar(None, f.type), arr)
                elif pa.types.is_floating(f.type):
                    pass  # NaN stays NaN: only masked values are NULL
            arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


# tfrecord -----------------------------------------------------------------


def _write_tfrecord(table: pa.Table, sink: BinaryIO) -> None:
    tfrecord.write(table, sink)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("parquet", "parquet", _write_parquet, _read_parquet, "Apache Parquet"),
        Format("csv", "csv", _csv_writer(","), _csv_reader(","), "comma-separated, header"),
        Format("tsv", "tsv", _csv_writer("\t"), _csv_reader("\t"), "tab-separated, header"),
        Format("arrow", "arrow", _write_arrow, _read_arrow, "Arrow IPC file (Feather v2)"),
        Format("npz", "npz", _write_npz, _read_npz, "numpy .npz, one array per column"),
        Format("tfrecord", "tfrecord", _write_tfrecord, tfrecord.read, "tf.train.Example"),
    )
}
ALIASES = {"feather": "arrow", "ipc": "arrow", "numpy": "npz", "tfrecords": "tfrecord"}


def get_format(name: str) -> Format:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in FORMATS:
        raise InvalidParameter(
            f"unknown training dataset format {name!r}",
            hint="Formats: " + ", ".join(FORMATS) + " (feather/ipc = arrow, numpy = npz).",
        )
    return FORMATS[key]
