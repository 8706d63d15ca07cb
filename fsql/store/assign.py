"""Assignment casts: the values of an SQL ``INSERT`` become feature types by
PostgreSQL's rules, and a value that does not fit is an error, never a
silently changed value.

ClickHouse's ``CAST`` wraps integers that overflow, truncates floats and turns
unparsable text into NULL when the target is Nullable; PostgreSQL refuses the
first and the last and rounds floats. So an INSERT evaluates its VALUES or
SELECT in the engine with the source's own types and converts here, with
pyarrow's strict casts:

- text (a quoted literal is PostgreSQL's "unknown" type) is parsed as the
  target type: ``'42'`` into ``bigint``, ``'2024-01-01'`` into ``timestamp``
  (``22P02`` / ``22007`` when it does not parse);
- integers narrow only when they fit (``22003`` otherwise);
- floats round to the nearest integer (half to even, as PostgreSQL's
  ``float8::int``) and to a numeric's scale;
- a value for ``timestamptz`` without an offset means UTC (the session zone).

>>> import pyarrow as pa
>>> from fsql.types import from_name
>>> assign_column(pa.array(["42", None]), from_name("integer"), "n").to_pylist()
[42, None]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fsql.errors import FsqlError
from fsql.types import FeatureType

_BOOL_WORDS = {
    "t": True, "true": True, "y": True, "yes": True, "on": True, "1": True,
    "f": False, "false": False, "n": False, "no": False, "off": False, "0": False,
}  # fmt: skip


class InvalidTextRepresentation(FsqlError):
    sqlstate = "22P02"


class InvalidDatetimeFormat(FsqlError):
    sqlstate = "22007"


class NumericValueOutOfRange(FsqlError):
    sqlstate = "22003"


_ZONE_AFTER_TIME = r"\d:\d\d(:\d\d(\.\d*)?)?\s*([+-]\d\d(:?\d\d)?|Z)$"
_AWAY = "half_towards_infinity"
_VERBATIM = (
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_binary,
    pa.types.is_large_binary,
)  # numeric rounds half away from zero


class _Invalid(Exception):
    """A value that does not convert (raised inside :func:`_convert`)."""


_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, _Invalid)


def assign_column(values: pa.ChunkedArray | pa.Array, ftype: FeatureType, column: str) -> Any:
    """``values`` converted to ``ftype`` (the Arrow type of a feature)."""
    try:
        return _convert(values, ftype)
    except _ARROW_ERRORS as e:
        if pa.types.is_union(values.type):  # the kind that fails says which value
            chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
            for chunk in chunks:
                for i in range(chunk.type.num_fields):
                    assign_column(chunk.field(i), ftype, column)
        for value in values.to_pylist():
            if value is None:
                continue
            try:
                _convert(pa.array([value], values.type), ftype)
            except _ARROW_ERRORS:
                raise _error_for(value, ftype, column) from None
        raise InvalidTextRepresentation(
            f'column "{column}" is of type {ftype.name}: {e}',
            hint=f"Make the values fit {ftype.name} or CAST them in the statement.",
        ) from None


def _convert(values: Any, ftype: FeatureType) -> Any:
    target = ftype.arrow
    source = values.type
    if source.equals(target):
        return values
    if pa.types.is_null(source):
        return pa.nulls(len(values), target)
    if pa.types.is_union(source):
        return _from_union(values, ftype)
    if pa.types.is_string(source) or pa.types.is_large_string(source):
        return _from_text(values, target)
    if pa.types.is_floating(source) and pa.types.is_integer(target):
        values = pc.round(values, round_mode="half_to_even")  # float8::int is rint()
    elif pa.types.is_decimal(target) and (
        pa.types.is_floating(source)
        or (pa.types.is_decimal(source) and source.scale > target.scale)
    ):
        values = pc.round(values, ndigits=target.scale, round_mode=_AWAY)
    out = values.cast(target)
    if (
        pa.types.is_floating(source)
        and pa.types.is_floating(target)
        and pc.any(pc.and_(pc.is_finite(values), pc.invert(pc.is_finite(out)))).as_py()
    ):
        raise _Invalid("float overflow")
    return out


def _from_union(values: Any, ftype: FeatureType) -> Any:
    """A column of mixed types (the engine's Variant for VALUES rows that mix
    text and numbers): each kind converted on its own, rows kept in order."""
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    out = []
    for chunk in chunks:
        if chunk.type.mode != "dense":
            raise _Invalid("sparse union")
        children = [_convert(chunk.field(i), ftype) for i in range(chunk.type.num_fields)]
        starts = np.cumsum([0] + [len(c) for c in children[:-1]])
        codes = np.asarray(chunk.type_codes)
        child_of_code = {code: i for i, code in enumerate(chunk.type.type_codes)}
        child = np.vectorize(child_of_code.__getitem__, otypes=[np.int64])(codes)
        positions = starts[child] + np.asarray(chunk.offsets)
        out.append(pa.concat_arrays(children).take(pa.array(positions)))
    return pa.chunked_array(out, type=ftype.arrow)


def _from_text(values: Any, target: pa.DataType) -> Any:
    if any(is_(target) for is_ in _VERBATIM):  # text is taken as it is
        return values.cast(target)
    trimmed = pc.utf8_trim_whitespace(values)
    if pa.types.is_boolean(target):
        index = pc.index_in(pc.utf8_lower(trimmed), value_set=pa.array(list(_BOOL_WORDS)))
        if pc.any(pc.and_(pc.is_null(index), pc.is_valid(trimmed))).as_py():
            raise _Invalid("not a boolean")
        return pc.take(pa.array(list(_BOOL_WORDS.values())), index)
    if pa.types.is_timestamp(target) and target.tz is not None:
        # values without an offset are in the session zone, UTC
        zoned = pc.match_substring_regex(trimmed, _ZONE_AFTER_TIME)
        with_zone = pc.if_else(zoned, trimmed, None).cast(target)
        naive = pc.if_else(zoned, None, trimmed).cast(pa.timestamp(target.unit)).cast(target)
        return pc.if_else(zoned, with_zone, naive)
    if pa.types.is_decimal(target):
        wide = pa.decimal128(38, max(target.scale, 18))
        rounded = pc.round(trimmed.cast(wide), ndigits=target.scale, round_mode=_AWAY)
        return rounded.cast(target)
    return trimmed.cast(target)


def _error_for(value: Any, ftype: FeatureType, column: str) -> FsqlError:
    target = ftype.arrow
    hint = f'Column "{column}" is {ftype.name}; make the value fit it or CAST it.'
    if isinstance(value, str):
        kind: type[FsqlError] = (
            InvalidDatetimeFormat
            if pa.types.is_timestamp(target) or pa.types.is_date(target)
            else InvalidTextRepresentation
        )
        return kind(
            f'invalid input syntax for type {ftype.name}: "{value}" (column "{column}")',
            hint=hint,
        )
    if isinstance(value, float) and not math.isfinite(value):
        return NumericValueOutOfRange(
            f'{value} cannot be {ftype.name} (column "{column}")', hint=hint
        )
    return NumericValueOutOfRange(
        f'value {value} is out of range for type {ftype.name} (column "{column}")', hint=hint
    )
