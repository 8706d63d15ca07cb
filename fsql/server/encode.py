"""Arrow record batches to PostgreSQL DataRow messages, vectorized.

Each column becomes (bytes buffer, per-row start, per-row length, null mask)
in the requested format (0 text, 1 binary); the rows are then assembled with
numpy scatter operations, so no Python code runs per row for the common
types (numbers, strings, booleans, dates, timestamps). Decimals and arrays
go through a per-value path.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fsql.errors import FsqlError
from fsql.tables import TYPE_KEY  # field metadata naming a feature type (json)
from fsql.types import from_arrow, from_name

PG_EPOCH_DAYS = 10957  # 2000-01-01 - 1970-01-01
PG_EPOCH_US = PG_EPOCH_DAYS * 86400 * 1_000_000

# oid -> typlen, as pg_type has it
_TYPLEN = {16: 1, 21: 2, 23: 4, 20: 8, 700: 4, 701: 8, 1082: 4, 1114: 8, 1184: 8, 26: 4}
_BINARY_OK = {16, 17, 20, 21, 23, 25, 114, 700, 701, 1043, 1082, 1114, 1184, 1700, 26, 19, 18}


@dataclass(frozen=True)
class Field:
    name: str
    oid: int
    fmt: int  # 0 text, 1 binary

    @property
    def typlen(self) -> int:
        return _TYPLEN.get(self.oid, -1)


def oid_of(dtype: pa.DataType) -> int:
    if pa.types.is_null(dtype):
        return 25
    if pa.types.is_dictionary(dtype):
        return oid_of(dtype.value_type)
    if _is_binary(dtype):
        return 17
    if pa.types.is_uint64(dtype):
        return 20  # count(*) and friends: bigint, as PostgreSQL types them
    try:
        return from_arrow(dtype).pg_oid
    except Exception:
        return 25


def fields_for(schema: pa.Schema, formats: list[int] | tuple[int, ...]) -> list[Field]:
    """Field descriptions for ``schema`` with the client's result format codes
    (none: all text; one: for all columns; else one per column)."""
    n = len(schema)
    if not formats:
        fmts = [0] * n
    elif len(formats) == 1:
        fmts = [formats[0]] * n
    else:
        fmts = list(formats) + [0] * (n - len(formats))
    out = []
    for f, fmt in zip(schema, fmts, strict=False):
        out.append(Field(f.name, field_oid(f), 1 if fmt == 1 else 0))
    return out


def field_oid(f: pa.Field) -> int:
    """The type OID of an Arrow field: its Arrow type's, except a string
    field whose metadata names a json feature type (``fsql.type``), which is
    described as json (114) so clients decode it."""
    oid = oid_of(f.type)
    if oid == 25 and f.metadata and TYPE_KEY in f.metadata:
        try:
            named = from_name(f.metadata[TYPE_KEY].decode()).pg_oid
        except Exception:
            return oid
        if named in (114, 3802):
            return 114
    return oid


def row_description_fields(fields: list[Field]) -> list[tuple[str, int, int, int]]:
    return [(f.name, f.oid, f.typlen, f.fmt) for f in fields]


# --- per column: a large_binary array of wire values (null for NULL) -------

LB = pa.large_binary()


def _nulls(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.zeros(len(arr), dtype=bool)
    return np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def check_utf8(arr: pa.Array) -> None:
    """Raise SQLSTATE 22021 when a string array holds bytes that are not
    UTF-8 (sent as text they would break the client's decoding)."""
    try:
        arr.validate(full=True)
    except pa.ArrowInvalid:
        raise FsqlError(
            'invalid byte sequence for encoding "UTF8" in a text result column',
            sqlstate="22021",
            hint="Binary data belongs in a bytea feature.",
        ) from None


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_binary(t: pa.DataType) -> bool:
    return (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    )


def _varlen(arr: pa.Array) -> pa.Array:
    """A string/binary array as large_binary (zero-copy where Arrow can)."""
    if arr.type == LB:
        return arr
    if pa.types.is_string(arr.type) or pa.types.is_binary(arr.type):
        return arr.cast(pa.binary()).cast(LB)
    return arr.cast(pa.large_string() if not pa.types.is_binary_view(arr.type) else LB).cast(LB)


def _fixed(values: np.ndarray, nulls: np.ndarray) -> pa.Array:
    """A numpy array of big-endian fixed-width values as large_binary."""
    w = values.dtype.itemsize
    n = len(values)
    data = pa.py_buffer(np.ascontiguousarray(values).view(np.uint8))
    offsets = pa.py_buffer(np.arange(n + 1, dtype=np.int64) * w)
    mask = pa.array(~nulls).buffers()[1] if nulls.any() else None
    return pa.LargeBinaryArray.from_buffers(LB, n, [mask, offsets, data])


def _from_pylist(values: list[bytes | None]) -> pa.Array:
    return pa.array(values, type=LB)


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _hex_column(arr: pa.Array) -> pa.Array:
    """bytea's text form, ``\\x`` and two hex digits a byte, vectorized."""
    lb = (
        _varlen(arr)
        if not pa.types.is_fixed_size_binary(arr.type)
        else _from_pylist(arr.to_pylist())
    )
    n = len(lb)
    offs = np.frombuffer(lb.buffers()[1], dtype=np.int64, count=n + 1, offset=lb.offset * 8)
    lo, hi = int(offs[0]), int(offs[-1])
    data = lb.buffers()[2]
    raw = (
        np.frombuffer(data, dtype=np.uint8, count=hi - lo, offset=lo)
        if data is not None and hi > lo
        else np.zeros(0, np.uint8)
    )
    new_offs = (offs - lo) * 2 + np.arange(n + 1, dtype=np.int64) * 2
    out = np.empty(int(new_offs[-1]), dtype=np.uint8)
    starts = new_offs[:-1]
    is_hex = np.ones(len(out), dtype=bool)
    is_hex[starts] = False
    is_hex[starts + 1] = False
    hexed = np.empty(2 * len(raw), dtype=np.uint8)
    hexed[0::2] = _HEX[raw >> 4]
    hexed[1::2] = _HEX[raw & 15]
    out[is_hex] = hexed
    out[starts] = ord("\\")
    out[starts + 1] = ord("x")
    nulls = _nulls(arr)
    mask = pa.array(~nulls).buffers()[1] if nulls.any() else None
    return pa.LargeBinaryArray.from_buffers(
        LB, n, [mask, pa.py_buffer(new_offs), pa.py_buffer(out)]
    )


def _fill_numpy(arr: pa.Array, dtype: np.dtype) -> np.ndarray:
    if arr.null_count:
        arr = arr.fill_null(0)
    return np.asarray(arr.to_numpy(zero_copy_only=False)).astype(dtype, copy=False)


def _text_column(arr: pa.Array) -> pa.Array:
    t = arr.type
    if pa.types.is_dictionary(t):
        return _text_column(arr.dictionary_decode())
    if _is_string(t):
        check_utf8(arr)
        return _varlen(arr)
    if pa.types.is_boolean(t):
        s = pc.if_else(arr, "t", "f")
    elif pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_date(t):
        s = pc.cast(arr, pa.string())
    elif pa.types.is_floating(t):
        s = pc.cast(arr, pa.string())
        if arr.null_count < len(arr):
            f = arr.cast(pa.float64())
            s = pc.if_else(pc.is_nan(f), "NaN", s)
            s = pc.if_else(pc.equal(f, float("inf")), "Infinity", s)
            s = pc.if_else(pc.equal(f, float("-inf")), "-Infinity", s)
    elif pa.types.is_timestamp(t):
        a = arr.cast(pa.timestamp("us", tz="UTC" if t.tz else None))
        s = pc.strftime(a, format="%Y-%m-%d %H:%M:%S")
        s = pc.replace_substring_regex(s, r"\.?0+$", "")
        if t.tz:
            s = pc.binary_join_element_wise(s, "+00", "")
    elif pa.types.is_null(t):
        return _from_pylist([None] * len(arr))
    elif _is_binary(t):
        return _hex_column(arr)
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        check_utf8(arr)  # the strings inside
        return _from_pylist(
            [None if v is None else _array_text(v).encode() for v in arr.to_pylist()]
        )
    else:
        check_utf8(arr)
        return _from_pylist(
            [None if v is None else _scalar_text(v).encode() for v in arr.to_pylist()]
        )
    return _varlen(s)


def _scalar_text(v: object) -> str:
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "Infinity" if v > 0 else "-Infinity"
        return repr(v)
    if isinstance(v, dt.datetime):
        aware = v.tzinfo is not None
        if aware:
            v = v.astimezone(dt.UTC).replace(tzinfo=None)
        s = v.isoformat(sep=" ")
        if v.microsecond:  # PostgreSQL drops trailing zeros of the fraction
            s = s.rstrip("0")
        return s + "+00" if aware else s
    if isinstance(v, bytes):
        return "\\x" + v.hex()
    if isinstance(v, list):
        return _array_text(v)
    return str(v)


_ARRAY_SPECIAL = frozenset('{},"\\ \t\n\r\v\f')


def _array_text(values: list) -> str:
    """A one-dimensional array in PostgreSQL's text form (``array_out``): an
    element is quoted only when it is empty, equals NULL in any case, or
    holds a brace, comma, double quote, backslash or whitespace."""
    parts = []
    for v in values:
        if v is None:
            parts.append("NULL")
            continue
        s = _scalar_text(v)
        if not isinstance(v, list) and (
            s == ""
            or (len(s) == 4 and s.isascii() and s.upper() == "NULL")
            or not _ARRAY_SPECIAL.isdisjoint(s)
        ):
            s = '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(s)
    return "{" + ",".join(parts) + "}"


def _binary_column(arr: pa.Array, oid: int) -> pa.Array:
    t = arr.type
    nulls = _nulls(arr)
    if pa.types.is_dictionary(t):
        return _binary_column(arr.dictionary_decode(), oid)
    if oid == 16:
        return _fixed(_fill_numpy(arr.cast(pa.uint8()), np.dtype(np.uint8)), nulls)
    if oid == 21:
        return _fixed(_fill_numpy(arr, np.dtype(">i2")), nulls)
    if oid == 23:
        return _fixed(_fill_numpy(arr, np.dtype(">i4")), nulls)
    if oid == 20:
        return _fixed(_fill_numpy(arr, np.dtype(">i8")), nulls)
    if oid == 700:
        return _fixed(_fill_numpy(arr, np.dtype(">f4")), nulls)
    if oid == 701:
        return _fixed(_fill_numpy(arr, np.dtype(">f8")), nulls)
    if oid == 1082:
        days = _fill_numpy(arr.cast(pa.date32()).cast(pa.int32()), np.dtype(np.int32))
        return _fixed((days - PG_EPOCH_DAYS).astype(">i4"), nulls)
    if oid in (1114, 1184):
        a = arr.cast(pa.timestamp("us", tz=t.tz)) if t.unit != "us" else arr
        us = _fill_numpy(a.cast(pa.int64()), np.dtype(np.int64))
        return _fixed((us - PG_EPOCH_US).astype(">i8"), nulls)
    if _is_string(t):
        check_utf8(arr)
        return _varlen(arr)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return _varlen(arr)
    if pa.types.is_binary_view(t):
        return _varlen(arr)
    if pa.types.is_fixed_size_binary(t):
        return _from_pylist(arr.to_pylist())
    if oid == 1700:
        return _from_pylist([None if v is None else numeric_binary(v) for v in arr.to_pylist()])
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        check_utf8(arr)
        elem = oid_of(t.value_type)
        return _from_pylist([None if v is None else array_binary(v, elem) for v in arr.to_pylist()])
    # anything else: its text form
    return _text_column(arr)


def numeric_binary(v: object) -> bytes:
    d = v if isinstance(v, decimal.Decimal) else decimal.Decimal(str(v))
    if d.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    dscale = max(-exp, 0)
    # digits as an integer string, aligned to base-10000 groups around the point
    int_str = "".join(map(str, digits)) or "0"
    if exp > 0:
        int_str += "0" * exp
        exp = 0
    # pad so the fractional part is a multiple of 4 and the integer part too
    frac_len = -exp
    pad_frac = (4 - frac_len % 4) % 4
    int_str += "0" * pad_frac
    frac_len += pad_frac
    int_len = len(int_str) - frac_len
    pad_int = (4 - int_len % 4) % 4
    int_str = "0" * pad_int + int_str
    int_len += pad_int
    groups = [int(int_str[i : i + 4]) for i in range(0, len(int_str), 4)]
    weight = int_len // 4 - 1
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    return struct.pack(
        f"!hhHh{len(groups)}H", len(groups), weight, 0x4000 if sign else 0, dscale, *groups
    )


def _scalar_binary(v: object, oid: int) -> bytes:
    if oid == 16:
        return b"\x01" if v else b"\x00"
    if oid == 21:
        return struct.pack("!h", v)
    if oid == 23:
        return struct.pack("!i", v)
    if oid == 20:
        return struct.pack("!q", v)
    if oid == 700:
        return struct.pack("!f", v)
    if oid == 701:
        return struct.pack("!d", v)
    if oid == 1700:
        return numeric_binary(v)
    if oid == 1082 and isinstance(v, dt.date):
        return struct.pack("!i", v.toordinal() - dt.date(2000, 1, 1).toordinal())
    if oid in (1114, 1184) and isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC).replace(tzinfo=None)
        delta = v - dt.datetime(2000, 1, 1)
        us = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        return struct.pack("!q", us)
    if isinstance(v, bytes):
        return v
    return str(v).encode()


def array_binary(values: list, elem_oid: int) -> bytes:
    has_null = any(v is None for v in values)
    parts = [struct.pack("!iiiii", 1, 1 if has_null else 0, elem_oid, len(values), 1)]
    for v in values:
        if v is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            b = _scalar_binary(v, elem_oid)
            parts.append(struct.pack("!i", len(b)) + b)
    return b"".join(parts)


# --- assembly -------------------------------------------------------------


def encode_columns(batch: pa.RecordBatch | pa.Table, fields: list[Field]) -> list[pa.Array]:
    cols = []
    for i, f in enumerate(fields):
        arr = batch.column(i)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        cols.append(_binary_column(arr, f.oid) if f.fmt == 1 else _text_column(arr))
    return cols


def _lengths(col: pa.Array) -> np.ndarray:
    offs = np.frombuffer(
        col.buffers()[1], dtype=np.int64, count=len(col) + 1, offset=col.offset * 8
    )
    lens = np.diff(offs)
    if col.null_count:
        lens = np.where(_nulls(col), -1, lens)
    return lens


def data_rows(batch: pa.RecordBatch | pa.Table, fields: list[Field]) -> bytes:
    """DataRow messages for every row of ``batch``."""
    n = batch.num_rows
    if n == 0:
        return b""
    cols = encode_columns(batch, fields)
    ncols = len(cols)
    row_len = np.full(n, 6 + 4 * ncols, dtype=np.int64)
    pieces: list[pa.Array] = []
    for col in cols:
        lens = _lengths(col)
        row_len += np.maximum(lens, 0)
        pieces.append(_fixed(lens.astype(">i4"), np.zeros(n, dtype=bool)))
        pieces.append(col)
    head = np.empty((n, 7), dtype=np.uint8)
    head[:, 0] = ord("D")
    head[:, 1:5] = row_len.astype(">i4").view(np.uint8).reshape(n, 4)
    head[:, 5:7] = np.frombuffer(struct.pack("!h", ncols), dtype=np.uint8)
    first = pa.LargeBinaryArray.from_buffers(
        LB, n, [None, pa.py_buffer(np.arange(n + 1, dtype=np.int64) * 7), pa.py_buffer(head)]
    )
    joined = pc.binary_join_element_wise(
        first,
        *pieces,
        pa.scalar(b"", LB),
        null_handling="replace",
        null_replacement=b"",
    )
    return _concat(joined)


def copy_csv(batch: pa.RecordBatch | pa.Table, header: list[str] | None = None) -> bytes:
    """Rows in COPY csv format: NULL is empty, values quoted only when needed."""
    cols = []
    empty = pa.scalar("", pa.large_string())
    for i in range(batch.num_columns):
        arr = batch.column(i)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        s = _text_column(arr).cast(pa.large_string())
        needs = pc.or_(pc.match_substring_regex(s, '[",\n\r]'), pc.equal(s, empty))
        quoted = pc.binary_join_element_wise(
            pa.scalar('"', pa.large_string()),
            pc.replace_substring(s, '"', '""'),
            pa.scalar('"', pa.large_string()),
            empty,
        )
        cols.append(pc.fill_null(pc.if_else(needs, quoted, s), empty))
    head = b""
    if header is not None:
        head = (",".join(_csv_quote(h) for h in header) + "\n").encode()
    if batch.num_rows == 0:
        return head
    if not cols:
        return head + b"\n" * batch.num_rows
    comma = pa.scalar(",", pa.large_string())
    joined = pc.binary_join_element_wise(*cols, comma) if len(cols) > 1 else cols[0]
    lines = pc.binary_join_element_wise(joined, pa.scalar("\n", pa.large_string()), empty)
    return head + _concat(lines)


def _csv_quote(text: str) -> str:
    if text == "" or any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _concat(arr: pa.Array) -> bytes:
    offs = np.frombuffer(
        arr.buffers()[1], dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8
    )
    lo, hi = int(offs[0]), int(offs[-1])
    return (
        arr.buffers()[2].to_pybytes()[lo:hi]
        if lo or hi != arr.buffers()[2].size
        else arr.buffers()[2].to_pybytes()
    )


# --- COPY text format ------------------------------------------------------


def copy_text(batch: pa.RecordBatch | pa.Table, header: list[str] | None = None) -> bytes:
    """Rows in COPY text format (tab separated, \\N for NULL, backslash escapes)."""
    n = batch.num_rows
    cols = []
    for i in range(batch.num_columns):
        arr = batch.column(i)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        strings = _text_column(arr).cast(pa.large_string())
        for a, b in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
            strings = pc.replace_substring(strings, a, b)
        cols.append(pc.fill_null(strings, "\\N"))
    head = b""
    if header is not None:
        head = ("\t".join(header) + "\n").encode()
    if n == 0:
        return head
    if not cols:
        return head + b"\n" * n
    tab = pa.scalar("\t", pa.large_string())
    joined = pc.binary_join_element_wise(*cols, tab) if len(cols) > 1 else cols[0]
    nl = pa.scalar("\n", pa.large_string())
    lines = pc.binary_join_element_wise(joined, nl, pa.scalar("", pa.large_string()))
    return head + _concat(lines)


# --- small results: row by row in Python ------------------------------------
#
# The vectorized path above has a fixed cost of ~1 ms per call (dozens of
# Arrow/numpy kernels), which dominates a one-row answer such as an online
# feature lookup. For small results each value is encoded by a per-column
# Python function producing exactly the same bytes (tests compare the two);
# types without such a function keep the vectorized path.

SMALL_ROWS = 256

_PACK_H = struct.Struct("!h").pack
_PACK_I = struct.Struct("!i").pack
_PACK_Q = struct.Struct("!q").pack
_PACK_D = struct.Struct("!d").pack
_NULL = b"\xff\xff\xff\xff"
_DATE_EPOCH_ORDINAL = dt.date(2000, 1, 1).toordinal()
_TS_EPOCH = dt.datetime(2000, 1, 1)


class Unsupported(Exception):
    """A value the row-by-row encoder does not handle: use the vectorized path."""


def float_text(v: float) -> str:
    """A double as Arrow's cast to string writes it (shortest round-trip
    digits; plain notation for decimal exponents -6..9, else ``1.5e+20``)."""
    if v != v:
        return "NaN"
    if v == _INF:
        return "Infinity"
    if v == -_INF:
        return "-Infinity"
    r = repr(v)
    if "e" not in r and -1e10 < v < 1e10:  # repr is plain too (|v| >= 1e-4 or 0)
        return r[:-2] if r.endswith(".0") else r
    sign = ""
    if r[0] == "-":
        sign, r = "-", r[1:]
    mant, _, e = r.partition("e")
    exp10 = int(e) if e else 0
    ip, _, fp = mant.partition(".")
    s = ip + fp
    lead = len(s) - len(s.lstrip("0"))
    digits = s[lead:].rstrip("0")
    if not digits:
        return sign + "0"
    point = len(ip) + exp10 - lead  # the decimal point sits after `point` digits
    e10 = point - 1
    if -6 <= e10 < 10:
        if point <= 0:
            return sign + "0." + "0" * (-point) + digits
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits))
        return sign + digits[:point] + "." + digits[point:]
    m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{m}e{'+' if e10 >= 0 else '-'}{abs(e10)}"


_INF = float("inf")


def _ts_text(v: dt.datetime) -> str:
    if v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
    if not 1000 <= v.year <= 9999:
        raise Unsupported
    s = v.isoformat(sep=" ")
    return s.rstrip("0") if v.microsecond else s


def _ts_binary(v: dt.datetime) -> bytes:
    if v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
    d = v - _TS_EPOCH
    return _PACK_Q((d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds)


def value_encoder(dtype: pa.DataType, field: Field) -> Callable[[Any], bytes] | None:
    """``value -> wire bytes`` for one column of Arrow type ``dtype`` (its
    Python values as ``to_pylist`` gives them), the same bytes the vectorized
    encoder writes; None for types it does not cover. The function raises
    :class:`Unsupported` for a value it cannot encode identically."""
    oid, binary = field.oid, field.fmt == 1
    if pa.types.is_signed_integer(dtype) and oid in (20, 21, 23):
        pack = {21: _PACK_H, 23: _PACK_I, 20: _PACK_Q}[oid]

        def integer(v: Any) -> bytes:
            if type(v) is not int:
                raise Unsupported
            return pack(v) if binary else b"%d" % v

        return integer
    if pa.types.is_float64(dtype) and oid == 701:

        def double(v: Any) -> bytes:
            if type(v) is not float:
                if type(v) is not int:
                    raise Unsupported
                v = float(v)
            return _PACK_D(v) if binary else float_text(v).encode()

        return double
    if pa.types.is_boolean(dtype) and oid == 16:

        def boolean(v: Any) -> bytes:
            if type(v) is not bool:
                raise Unsupported
            if binary:
                return b"\x01" if v else b"\x00"
            return b"t" if v else b"f"

        return boolean
    if (pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype)) and oid == 17:

        def bytea(v: Any) -> bytes:
            if type(v) is not bytes:
                raise Unsupported
            return v if binary else b"\\x" + v.hex().encode()

        return bytea
    if (pa.types.is_string(dtype) or pa.types.is_large_string(dtype)) and oid in (25, 114):

        def text(v: Any) -> bytes:
            if type(v) is not str:
                raise Unsupported
            return v.encode()

        return text
    if pa.types.is_date32(dtype) and oid == 1082:

        def date(v: Any) -> bytes:
            if type(v) is not dt.date or v.year < 1000:
                raise Unsupported
            if binary:
                return _PACK_I(v.toordinal() - _DATE_EPOCH_ORDINAL)
            return v.isoformat().encode()

        return date
    if pa.types.is_timestamp(dtype) and dtype.unit in ("s", "ms", "us") and oid in (1114, 1184):
        tz = oid == 1184

        def timestamp(v: Any) -> bytes:
            if type(v) is not dt.datetime or (v.tzinfo is not None) != tz:
                raise Unsupported
            if binary:
                return _ts_binary(v)
            return (_ts_text(v) + "+00").encode() if tz else _ts_text(v).encode()

        return timestamp
    return None


def row_encoders(
    types: Sequence[pa.DataType], fields: Sequence[Field]
) -> list[Callable[[Any], bytes]] | None:
    """One :func:`value_encoder` per column, or None when a column has none."""
    out = []
    for dtype, f in zip(types, fields, strict=True):
        enc = value_encoder(dtype, f)
        if enc is None:
            return None
        out.append(enc)
    return out


def data_rows_py(
    rows: Iterable[Sequence[Any]], encoders: Sequence[Callable[[Any], bytes]]
) -> bytes:
    """DataRow messages for Python rows (raises :class:`Unsupported`)."""
    head = _PACK_H(len(encoders))
    out = []
    for row in rows:
        parts = [head]
        append = parts.append
        for v, enc in zip(row, encoders, strict=True):
            if v is None:
                append(_NULL)
            else:
                b = enc(v)
                append(_PACK_I(len(b)))
                append(b)
        body = b"".join(parts)
        out.append(b"D" + _PACK_I(len(body) + 4) + body)
    return b"".join(out)


def small_data_rows(table: pa.Table | pa.RecordBatch, fields: list[Field]) -> bytes | None:
    """:func:`data_rows` of a small result, row by row; None when a column
    or value needs the vectorized path."""
    if table.num_rows > SMALL_ROWS or not fields or table.num_columns != len(fields):
        return None
    encoders = row_encoders(table.schema.types, fields)
    if encoders is None:
        return None
    try:
        columns = [c.to_pylist() for c in table.columns]
        return data_rows_py(zip(*columns, strict=True), encoders)
    except (Unsupported, struct.error, OverflowError, TypeError, ValueError):
        return None
