"""TFRecord files of ``tf.train.Example`` messages, without TensorFlow.

Encoding is vectorized with Arrow: each protobuf level is a length-delimited
field, so a column of per-row payloads becomes a column of fields by joining
a constant tag, the varint of each payload's length and the payload
(``pc.binary_join_element_wise``). A record batch becomes one Arrow binary
column of serialized Examples, framed as TFRecord::

    uint64 length (little endian)
    uint32 masked_crc32c(length bytes)
    byte   data[length]
    uint32 masked_crc32c(data)

Type mapping (``tf.train.Feature`` has three list kinds):

=================================  ==================================
Arrow                              Feature
=================================  ==================================
float16/32/64                      float_list (float32)
int*/uint*/bool/date/timestamp     int64_list (timestamps: microseconds
                                   since the epoch, dates: days)
string/binary/decimal/json         bytes_list (UTF-8; decimals as text)
list<one of the above>             the same list kind, many values
NULL                               the list kind with no values
=================================  ==================================
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fsql.errors import FeatureNotSupported, FsqlError

try:  # C implementation; the pure-Python one below is the fallback
    import google_crc32c as _gcrc

    crc32c = _gcrc.value

except ImportError:  # pragma: no cover - exercised only without the wheel
    _TABLE = []
    for _i in range(256):
        _c = _i
        for _ in range(8):
            _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
        _TABLE.append(_c)

    def crc32c(data: bytes) -> int:
        crc = 0xFFFFFFFF
        for byte in data:
            crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF


MASK_DELTA = 0xA282EAD8

BYTES_LIST, FLOAT_LIST, INT64_LIST = 1, 2, 3
_EMPTY = pa.scalar(b"", pa.binary())


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def _tag(field: int) -> bytes:
    return bytes([(field << 3) | 2])  # wire type 2: length-delimited


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def varint_groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of unsigned 64-bit values as an (n, width) byte
    matrix (continuation bits set) and the number of bytes of each."""
    v = np.ascontiguousarray(values).astype(np.uint64, copy=False)
    n = len(v)
    top = int(v.max()) if n else 0
    width = max(1, (top.bit_length() + 6) // 7)
    if width == 1:
        return v.astype(np.uint8).reshape(n, 1), np.ones(n, dtype=np.int64)
    groups = np.empty((n, width), dtype=np.uint8)
    nbytes = np.ones(n, dtype=np.int64)
    t = v.copy()
    for i in range(width):
        groups[:, i] = (t & np.uint64(0x7F)).astype(np.uint8)
        t >>= np.uint64(7)
        if i < width - 1:
            nbytes += t > 0
    idx = np.arange(width)
    groups |= ((idx[None, :] < (nbytes[:, None] - 1)) * 0x80).astype(np.uint8)
    return groups, nbytes


def _ragged(matrix: np.ndarray, lengths: np.ndarray) -> pa.BinaryArray:
    """Row i of ``matrix`` cut to ``lengths[i]`` bytes, as a binary array."""
    n = len(lengths)
    idx = np.arange(matrix.shape[1])
    data = matrix[idx[None, :] < lengths[:, None]]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def varints(values: np.ndarray) -> pa.BinaryArray:
    """Protobuf varints of unsigned 64-bit values, one binary value each."""
    groups, nbytes = varint_groups(values)
    n = len(nbytes)
    if groups.shape[1] == 1:
        return _fixed(groups.reshape(n), 1)
    idx = np.arange(groups.shape[1])
    data = groups[idx[None, :] < nbytes[:, None]]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(nbytes, out=offsets[1:])
    return pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _fixed(values: np.ndarray, width: int) -> pa.BinaryArray:
    raw = np.ascontiguousarray(values).view(np.uint8)
    n = len(values)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.BinaryArray.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(raw)]
    )


def _join(*parts: pa.Array | pa.Scalar | bytes) -> pa.BinaryArray:
    args = [pa.scalar(p, pa.binary()) if isinstance(p, bytes) else p for p in parts]
    return pc.binary_join_element_wise(*args, _EMPTY)


class _Enc:
    """Encoded values, one per row: a constant ``prefix`` followed by ``arr``.

    Wrapping a column whose values all have one length only grows the
    constant prefix; the rows are copied once, when fields are joined."""

    __slots__ = ("arr", "const_len", "prefix")

    def __init__(self, prefix: bytes, arr: pa.BinaryArray, const_len: int | None) -> None:
        self.prefix = prefix
        self.arr = arr
        self.const_len = const_len

    @classmethod
    def of(cls, arr: pa.BinaryArray) -> _Enc:
        lengths = pc.binary_length(arr)
        mm = pc.min_max(lengths)
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
        return cls(b"", arr, lo if lo == hi and lo is not None else None)

    def materialize(self) -> pa.BinaryArray:
        return _join(self.prefix, self.arr) if self.prefix else self.arr


def wrap(field: int, payload: pa.BinaryArray | _Enc) -> _Enc:
    """Each payload as a length-delimited protobuf field ``field``."""
    enc = payload if isinstance(payload, _Enc) else _Enc.of(payload)
    if enc.const_len is not None:
        total = len(enc.prefix) + enc.const_len
        return _Enc(_tag(field) + _varint(total) + enc.prefix, enc.arr, enc.const_len)
    body = enc.materialize()
    lengths = pc.binary_length(body).to_numpy(zero_copy_only=False)
    return _Enc(b"", _join(_tag(field), varints(lengths.astype(np.uint64)), body), None)


def kind_of(t: pa.DataType) -> int:
    if pa.types.is_floating(t):
        return FLOAT_LIST
    if (
        pa.types.is_integer(t)
        or pa.types.is_boolean(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_date(t)
        or pa.types.is_duration(t)
        or pa.types.is_time(t)
    ):
        return INT64_LIST
    if (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_decimal(t)
    ):
        return BYTES_LIST
    raise FeatureNotSupported(
        f"type {t} cannot be written to a tf.train.Example",
        hint="Cast it to a number, text or a list of those in the query.",
    )


def _as_int64(arr: pa.Array) -> np.ndarray:
    t = arr.type
    if pa.types.is_boolean(t):
        arr = arr.cast(pa.int8())
    elif pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_time(t):
        arr = arr.cast(pa.int64()) if t.bit_width == 64 else arr.cast(pa.int32())
    elif pa.types.is_date(t):
        arr = arr.cast(pa.int32()) if pa.types.is_date32(t) else arr.cast(pa.int64())
    arr = arr.fill_null(0) if arr.null_count else arr
    # two's complement as uint64: negative numbers take ten bytes, as in protobuf
    return arr.to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64)


def _values(arr: pa.Array, kind: int) -> pa.BinaryArray:
    """Per value, the packed bytes that go inside a list (no nulls)."""
    if kind == FLOAT_LIST:
        filled = arr.fill_null(0) if arr.null_count else arr
        with np.errstate(over="ignore"):  # beyond float32: infinity, as TensorFlow
            values = filled.to_numpy(zero_copy_only=False).astype("<f4")
        return _fixed(values, 4)
    if kind == INT64_LIST:
        return varints(_as_int64(arr))
    if pa.types.is_decimal(arr.type):
        arr = arr.cast(pa.string())
    arr = arr.cast(pa.binary())
    arr = arr.fill_null(b"") if arr.null_count else arr
    return wrap(1, arr).materialize()  # repeated bytes value = 1 (never packed)


def encode_feature(arr: pa.Array) -> _Enc:
    """A column as serialized ``tf.train.Feature`` messages, one per row."""
    t = arr.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        kind = kind_of(t.value_type)
        flat = _values(arr.values, kind)
        # NULL lists become empty lists below; their offsets still delimit them
        payload = pc.binary_join(pa.ListArray.from_arrays(arr.offsets, flat), _EMPTY)
    else:
        kind = kind_of(t)
        payload = _values(arr, kind)
    if kind != BYTES_LIST:
        payload = wrap(1, payload).materialize()  # packed repeated value = 1
    if arr.null_count:
        payload = pc.if_else(arr.is_null(), _EMPTY, payload)
    return wrap(kind, payload)


def scalar_entry(key_field: bytes, arr: pa.Array) -> pa.BinaryArray | None:
    """The ``map<string, Feature>`` entries of a numeric scalar column, built
    in one numpy pass (every length in them is a single byte); None when the
    column is not a numeric scalar or the key is too long for that."""
    t = arr.type
    try:
        kind = kind_of(t)
    except FeatureNotSupported:
        return None
    if kind == BYTES_LIST:
        return None
    n = len(arr)
    if kind == FLOAT_LIST:
        filled = arr.fill_null(0) if arr.null_count else arr
        with np.errstate(over="ignore"):
            values = filled.to_numpy(zero_copy_only=False).astype("<f4")
        vbytes = values.view(np.uint8).reshape(n, 4)
        vlens = np.full(n, 4, dtype=np.int64)
    else:
        vbytes, vlens = varint_groups(_as_int64(arr))
    k = len(key_field)
    if k + 2 + 2 + 2 + 2 + vbytes.shape[1] >= 128:
        return None  # a length needs two varint bytes: the general path does it
    valid = ~arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
    list_len = vlens + 2  # FloatList/Int64List: 0x0A, len, packed values
    feature_len = list_len + 2  # Feature: kind tag, len, list
    inner_len = k + 2 + feature_len  # entry: key field, 0x12, len, feature
    o = 2 + k
    matrix = np.zeros((n, o + 6 + vbytes.shape[1]), dtype=np.uint8)
    matrix[:, 0] = 0x0A
    matrix[:, 1] = inner_len
    matrix[:, 2:o] = np.frombuffer(key_field, dtype=np.uint8)
    matrix[:, o] = 0x12
    matrix[:, o + 1] = feature_len
    matrix[:, o + 2] = (kind << 3) | 2
    matrix[:, o + 3] = list_len
    matrix[:, o + 4] = 0x0A
    matrix[:, o + 5] = vlens
    matrix[:, o + 6 :] = vbytes
    lengths = o + 6 + vlens
    if valid is not None:  # NULL: the Feature holds an empty list
        nulls = ~valid
        matrix[nulls, 1] = k + 2 + 2
        matrix[nulls, o + 1] = 2
        matrix[nulls, o + 3] = 0
        lengths = np.where(valid, lengths, o + 4)
    return _ragged(matrix, lengths)


def encode_examples(batch: pa.RecordBatch | pa.Table) -> pa.BinaryArray:
    """Serialized ``tf.train.Example`` messages, one per row."""
    if isinstance(batch, pa.Table):
        batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else None  # type: ignore[assignment]
        if batch is None:
            return pa.array([], pa.binary())
    parts: list[pa.Array | bytes] = []
    const_len: int | None = 0
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        key = name.encode()
        key_field = _tag(1) + _varint(len(key)) + key
        fast = (
            scalar_entry(key_field, column)
            if column.null_count or not (pa.types.is_floating(column.type))
            else None
        )
        if fast is not None:
            parts.extend([b"", fast])
            const_len = None
            continue
        feature = wrap(2, encode_feature(column))
        if feature.const_len is not None:
            entry = wrap(1, _Enc(key_field + feature.prefix, feature.arr, feature.const_len))
        else:
            entry = wrap(1, _join(key_field, feature.materialize()))
        parts.extend([entry.prefix, entry.arr])
        if const_len is not None and entry.const_len is not None:
            const_len += len(entry.prefix) + entry.const_len
        else:
            const_len = None
    features = _join(*[p for p in parts if not isinstance(p, bytes) or p])
    return wrap(1, _Enc(b"", features, const_len)).materialize()


def _offsets(arr: pa.Array) -> np.ndarray:
    buf = arr.buffers()[1]
    return np.frombuffer(buf, dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]


def frame(records: pa.BinaryArray) -> pa.Buffer:
    """TFRecord framing of serialized records."""
    lengths = pc.binary_length(records).to_numpy(zero_copy_only=False).astype("<u8")
    offsets = _offsets(records)
    buf = records.buffers()[2]
    data = buf.to_pybytes() if buf is not None else b""
    n = len(records)
    length_crcs = np.empty(n, dtype=np.uint64)
    raw = np.empty(n, dtype=np.uint64)
    seen: dict[int, int] = {}
    for i, length in enumerate(lengths.tolist()):
        crc = seen.get(length)
        if crc is None:
            crc = seen[length] = masked_crc(struct.pack("<Q", length))
        length_crcs[i] = crc
    starts = offsets.tolist()
    crc = crc32c
    raw[:] = [crc(data[a:b]) for a, b in itertools.pairwise(starts)]
    data_crcs = (
        ((raw >> np.uint64(15)) | (raw << np.uint64(17))) + np.uint64(MASK_DELTA)
    ) & np.uint64(0xFFFFFFFF)
    length_crcs = length_crcs.astype("<u4")
    data_crcs = data_crcs.astype("<u4")
    head = np.empty((n, 12), dtype=np.uint8)
    head[:, :8] = lengths.view(np.uint8).reshape(n, 8)
    head[:, 8:] = length_crcs.view(np.uint8).reshape(n, 4)
    framed = _join(_fixed(head, 12), records, _fixed(data_crcs, 4))
    out = framed.buffers()[2]
    framed_offsets = _offsets(framed)
    start, end = int(framed_offsets[0]), int(framed_offsets[-1])
    return out.slice(start, end - start) if out is not None else pa.py_buffer(b"")


def write(table: pa.Table, sink: BinaryIO, *, batch_rows: int = 65536) -> None:
    for batch in table.to_batches(max_chunksize=batch_rows):
        if batch.num_rows:
            sink.write(frame(encode_examples(batch)))


# reading -------------------------------------------------------------------


class CorruptRecord(FsqlError):
    sqlstate = "XX001"  # data_corrupted


def iter_records(data: bytes, *, verify: bool = True) -> Iterator[bytes]:
    """The records of a TFRecord file, checking both CRCs."""
    pos, end = 0, len(data)
    while pos < end:
        if pos + 12 > end:
            raise CorruptRecord(f"truncated TFRecord header at byte {pos}")
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        if verify and masked_crc(header) != length_crc:
            raise CorruptRecord(f"TFRecord length checksum mismatch at byte {pos}")
        start = pos + 12
        stop = start + length
        if stop + 4 > end:
            raise CorruptRecord(f"truncated TFRecord at byte {pos}")
        record = data[start:stop]
        (data_crc,) = struct.unpack("<I", data[stop : stop + 4])
        if verify and masked_crc(record) != data_crc:
            raise CorruptRecord(f"TFRecord data checksum mismatch at byte {pos}")
        yield record
        pos = stop + 4


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of a protobuf message."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            yield field, wire, value
        elif wire == 2:
            n, pos = _read_varint(buf, pos)
            yield field, wire, buf[pos : pos + n]
            pos += n
        elif wire == 5:
            yield field, wire, buf[pos : pos + 4]
            pos += 4
        elif wire == 1:
            yield field, wire, buf[pos : pos + 8]
            pos += 8
        else:
            raise CorruptRecord(f"unsupported protobuf wire type {wire}")


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def decode_feature(buf: bytes) -> tuple[int, list[object]]:
    for kind, _wire, payload in _fields(buf):
        assert isinstance(payload, bytes)
        values: list[object] = []
        for _f, wire, v in _fields(payload):
            if kind == BYTES_LIST:
                values.append(v)
            elif kind == FLOAT_LIST:
                assert isinstance(v, bytes)
                if wire == 2:
                    values.extend(np.frombuffer(v, dtype="<f4").tolist())
                else:
                    values.append(struct.unpack("<f", v)[0])
            elif wire == 2:
                assert isinstance(v, bytes)
                p = 0
                while p < len(v):
                    x, p = _read_varint(v, p)
                    values.append(_signed(x))
            else:
                assert isinstance(v, int)
                values.append(_signed(v))
        return kind, values
    return 0, []


def decode_example(buf: bytes) -> dict[str, tuple[int, list[object]]]:
    out: dict[str, tuple[int, list[object]]] = {}
    for _f, _w, features in _fields(buf):
        assert isinstance(features, bytes)
        for _f2, _w2, entry in _fields(features):
            assert isinstance(entry, bytes)
            key, value = b"", b""
            for f3, _w3, v in _fields(entry):
                assert isinstance(v, bytes)
                if f3 == 1:
                    key = v
                elif f3 == 2:
                    value = v
            out[key.decode()] = decode_feature(value)
    return out


def _scalar_array(values: list[object], t: pa.DataType) -> pa.Array:
    if pa.types.is_decimal(t):
        strs = [None if v is None else v.decode() for v in values]  # type: ignore[attr-defined]
        return pa.array(strs, pa.string()).cast(t)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        strs = [None if v is None else v.decode() for v in values]  # type: ignore[attr-defined]
        return pa.array(strs, t)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.array(values, t)
    if pa.types.is_floating(t):
        return pa.array(values, pa.float32()).cast(t)
    if pa.types.is_boolean(t):
        return pa.array(values, pa.int64()).cast(t)
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_time(t):
        return (
            pa.array(values, pa.int64())
            .cast(pa.int32() if t.bit_width == 32 else pa.int64())
            .cast(t)
        )
    if pa.types.is_date(t):
        width = pa.int32() if pa.types.is_date32(t) else pa.int64()
        return pa.array(values, pa.int64()).cast(width).cast(t)
    return pa.array(values, pa.int64()).cast(t)


def read(data: bytes, schema: pa.Schema) -> pa.Table:
    """Decode a TFRecord file written by :func:`write` back to ``schema``.

    An empty list is NULL for a scalar column; for a list column it is NULL
    too (``tf.train.Example`` cannot tell an empty list from a missing one).
    """
    columns: dict[str, list[object]] = {name: [] for name in schema.names}
    for record in iter_records(data):
        example = decode_example(record)
        for field in schema:
            _kind, values = example.get(field.name, (0, []))
            t = field.type
            if pa.types.is_list(t) or pa.types.is_large_list(t):
                columns[field.name].append(values if values else None)
            else:
                columns[field.name].append(values[0] if values else None)
    arrays = []
    for field in schema:
        t = field.type
        values = columns[field.name]
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            flat: list[object] = [x for v in values if v is not None for x in v]  # type: ignore[attr-defined]
            inner = _scalar_array(flat, t.value_type)
            offsets = [0]
            mask = []
            for v in values:
                offsets.append(offsets[-1] + (len(v) if v is not None else 0))  # type: ignore[arg-type]
                mask.append(v is None)
            arr = pa.ListArray.from_arrays(
                pa.array(offsets, pa.int32()), inner, mask=pa.array(mask, pa.bool_())
            )
            arrays.append(arr.cast(t))
        else:
            arrays.append(_scalar_array(values, t))
    return pa.Table.from_arrays(arrays, schema=schema)
