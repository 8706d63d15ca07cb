"""Feature types: one canonical name per type, mapped to Arrow, ClickHouse and
PostgreSQL.

The canonical name is the PostgreSQL spelling (``bigint``, ``double
precision``, ``timestamptz``, ``numeric(12,2)``, ``text[]``) because that is
what users write in ``CREATE FEATURE GROUP`` and what Postgres-wire clients
see in ``pg_catalog``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
from sqlglot import exp

from fsql.errors import DatatypeMismatch


@dataclass(frozen=True)
class FeatureType:
    name: str  # canonical (PostgreSQL) spelling
    arrow: pa.DataType
    clickhouse: str
    pg_oid: int

    @property
    def is_timestamp(self) -> bool:
        return pa.types.is_timestamp(self.arrow) or pa.types.is_date(self.arrow)


_SCALARS: dict[str, tuple[pa.DataType, str, int]] = {
    "boolean": (pa.bool_(), "Bool", 16),
    "smallint": (pa.int16(), "Int16", 21),
    "integer": (pa.int32(), "Int32", 23),
    "bigint": (pa.int64(), "Int64", 20),
    "real": (pa.float32(), "Float32", 700),
    "double precision": (pa.float64(), "Float64", 701),
    "text": (pa.string(), "String", 25),
    "bytea": (pa.binary(), "String", 17),
    "date": (pa.date32(), "Date32", 1082),
    "timestamp": (pa.timestamp("us"), "DateTime64(6)", 1114),
    "timestamptz": (pa.timestamp("us", tz="UTC"), "DateTime64(6, 'UTC')", 1184),
    "json": (pa.string(), "String", 114),
}

# Array OIDs of the scalar types above, as PostgreSQL numbers them.
_ARRAY_OIDS = {
    16: 1000, 21: 1005, 23: 1007, 20: 1016, 700: 1021, 701: 1022,
    25: 1009, 17: 1001, 1082: 1182, 1114: 1115, 1184: 1185, 114: 199, 1700: 1231,
}  # fmt: skip

# What users may write, folded to the canonical name.
_ALIASES = {
    "bool": "boolean",
    "int2": "smallint",
    "int": "integer",
    "int4": "integer",
    "int8": "bigint",
    "float4": "real",
    "float": "double precision",
    "float8": "double precision",
    "double": "double precision",
    "varchar": "text",
    "character varying": "text",
    "string": "text",
    "char": "text",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "jsonb": "json",
    "decimal": "numeric",
}

_NUMERIC = re.compile(r"^(?:numeric|decimal)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$")


def from_name(name: str) -> FeatureType:
    """Parse a user-written SQL type name.

    >>> from_name("DOUBLE PRECISION").clickhouse
    'Float64'
    >>> from_name("numeric(12, 2)").name
    'numeric(12,2)'
    """
    text = " ".join(name.strip().lower().split())
    if text.endswith("[]"):
        inner = from_name(text[:-2])
        return array_of(inner)
    # varchar(20), timestamp(6) and the like: the modifier does not change storage.
    m = _NUMERIC.match(text)
    if m:
        precision = int(m.group(1) or 38)
        scale = int(m.group(2) or (0 if m.group(1) else 9))
        return numeric(precision, scale)
    base = re.sub(r"\(\s*\d+\s*\)", "", text).strip()
    base = " ".join(base.split())
    base = _ALIASES.get(base, base)
    if base not in _SCALARS:
        raise DatatypeMismatch(
            f"type {name!r} is not supported",
            sqlstate="42704",
            hint="Use one of: " + ", ".join(sorted(_SCALARS)) + ", numeric(p,s), or T[].",
        )
    arrow, ch, oid = _SCALARS[base]
    return FeatureType(base, arrow, ch, oid)


def numeric(precision: int, scale: int) -> FeatureType:
    if not 1 <= precision <= 76 or not 0 <= scale <= precision:
        raise DatatypeMismatch(f"numeric({precision},{scale}) is out of range", sqlstate="22023")
    arrow = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    return FeatureType(
        f"numeric({precision},{scale})", arrow, f"Decimal({precision}, {scale})", 1700
    )


def array_of(inner: FeatureType) -> FeatureType:
    if inner.name.endswith("[]"):
        raise DatatypeMismatch("nested arrays are not supported", sqlstate="0A000")
    return FeatureType(
        inner.name + "[]",
        pa.list_(inner.arrow),
        f"Array(Nullable({inner.clickhouse}))",
        _ARRAY_OIDS.get(inner.pg_oid, 2277),
    )


def from_arrow(dtype: pa.DataType) -> FeatureType:
    """The feature type that stores an Arrow column of type ``dtype``."""
    if pa.types.is_dictionary(dtype):
        return from_arrow(dtype.value_type)
    if pa.types.is_boolean(dtype):
        return from_name("boolean")
    if pa.types.is_int8(dtype) or pa.types.is_int16(dtype) or pa.types.is_uint8(dtype):
        return from_name("smallint")
    if pa.types.is_int32(dtype) or pa.types.is_uint16(dtype):
        return from_name("integer")
    if pa.types.is_integer(dtype):
        return from_name("bigint")
    if pa.types.is_float16(dtype) or pa.types.is_float32(dtype):
        return from_name("real")
    if pa.types.is_floating(dtype):
        return from_name("double precision")
    if pa.types.is_decimal(dtype):
        return numeric(dtype.precision, dtype.scale)
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return from_name("text")
    if pa.types.is_string_view(dtype):
        return from_name("text")
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return from_name("bytea")
    if pa.types.is_date(dtype):
        return from_name("date")
    if pa.types.is_timestamp(dtype):
        return from_name("timestamptz" if dtype.tz else "timestamp")
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return array_of(from_arrow(dtype.value_type))
    raise DatatypeMismatch(
        f"Arrow type {dtype} has no feature type",
        sqlstate="42804",
        hint="Cast the column to a number, string, boolean, date, timestamp or list.",
    )


def clickhouse_type(ftype: FeatureType, *, nullable: bool) -> exp.DataType:
    """The ClickHouse column type as a sqlglot node."""
    text = ftype.clickhouse
    if nullable and not text.startswith("Array("):
        text = f"Nullable({text})"
    return exp.DataType.build(text, dialect="clickhouse")


def from_clickhouse(text: str) -> FeatureType:
    """Map a ClickHouse column type (as DESCRIBE prints it) to a feature type."""
    t = text.strip()
    for wrapper in ("Nullable(", "LowCardinality("):
        while t.startswith(wrapper):
            t = t[len(wrapper) : -1]
    if t.startswith("Array("):
        return array_of(from_clickhouse(t[len("Array(") : -1]))
    if t.startswith("Decimal"):
        nums = [int(x) for x in re.findall(r"\d+", t)]
        if len(nums) >= 2:
            return numeric(nums[-2], nums[-1])
        return numeric(38, 9)
    if t.startswith("DateTime64") or t.startswith("DateTime"):
        return from_name("timestamptz" if "'" in t else "timestamp")
    simple = {
        "Bool": "boolean", "UInt8": "smallint", "Int8": "smallint", "Int16": "smallint",
        "UInt16": "integer", "Int32": "integer", "UInt32": "bigint", "Int64": "bigint",
        "UInt64": "bigint", "Float32": "real", "Float64": "double precision",
        "String": "text", "FixedString": "text", "Date": "date", "Date32": "date",
        "UUID": "text", "Nothing": "text", "Enum8": "text", "Enum16": "text",
    }  # fmt: skip
    base = t.split("(")[0]
    if base in simple:
        return from_name(simple[base])
    raise DatatypeMismatch(f"ClickHouse type {text} has no feature type", sqlstate="42804")


def sql_literal_type(ftype: FeatureType) -> exp.DataType:
    """The type as a PostgreSQL-dialect sqlglot node (for casts in generated SQL)."""
    return exp.DataType.build(ftype.name, dialect="postgres")
