"""Check an incoming Arrow table against a feature group's schema and cast it
to the stored types. Every problem is reported at once, naming each column."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from fsql.catalog.records import FeatureGroup
from fsql.errors import DatatypeMismatch, NotNullViolation, UndefinedColumn
from fsql.types import FeatureType


def _family(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _family(t.value_type)
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "time"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "list"
    if pa.types.is_null(t):
        return "null"
    return str(t)


# (from family, to family) pairs that convert without changing meaning.
_WIDENING = {
    ("int", "float"),
    ("int", "decimal"),
    ("decimal", "float"),
    ("float", "decimal"),
    ("string", "binary"),
}


def compatible(src: pa.DataType, dst: pa.DataType) -> bool:
    a, b = _family(src), _family(dst)
    return a == b or a == "null" or (a, b) in _WIDENING


def conform(fg: FeatureGroup, table: pa.Table) -> pa.Table:
    """Return ``table`` with exactly the feature group's columns, in order,
    cast to the stored types; raise one error listing every problem."""
    expected = {f.name: f.ftype for f in fg.features}
    given = table.column_names
    missing = [n for n in expected if n not in given]
    extra = [n for n in given if n not in expected]
    mistyped: list[str] = []
    for name, ftype in expected.items():
        if name in given and not compatible(table.schema.field(name).type, ftype.arrow):
            if _integral_floats(table.column(name), ftype):
                continue  # pandas' int column with missing values: stored as integers
            mistyped.append(f"{name} (expected {ftype.name}, got {table.schema.field(name).type})")
    if missing or extra or mistyped:
        problems = []
        if missing:
            problems.append(
                "missing columns: " + ", ".join(f"{n} ({expected[n].name})" for n in missing)
            )
        if extra:
            problems.append("unknown columns: " + ", ".join(extra))
        if mistyped:
            problems.append("mistyped columns: " + "; ".join(mistyped))
        err_cls = UndefinedColumn if (extra or missing) and not mistyped else DatatypeMismatch
        raise err_cls(
            f'insert into feature group "{fg.name}" version {fg.version} does not match its '
            "schema: " + "; ".join(problems),
            hint="Expected columns: " + ", ".join(f"{n} {t.name}" for n, t in expected.items()),
        )
    arrays = []
    for name, ftype in expected.items():
        arrays.append(_cast(fg, name, table.column(name), ftype))
    out = pa.Table.from_arrays(arrays, names=list(expected))
    not_null = list(fg.primary_key) + ([fg.event_time] if fg.event_time else [])
    bad = [n for n in not_null if out.column(n).null_count]
    if bad:
        raise NotNullViolation(
            f'insert into feature group "{fg.name}": null values in '
            + ", ".join(f"{n} ({out.column(n).null_count} rows)" for n in bad)
            + "; primary key and event time columns must not be null",
        )
    return out


def _integral_floats(col: pa.ChunkedArray, ftype: FeatureType) -> bool:
    """A float column whose values are all whole numbers (or null) going to an
    integer feature: what pandas makes of an integer column with a missing
    value (NaN turns into float64). The safe cast then checks the range, and
    the nulls meet the usual NOT NULL check of keys."""
    if not (pa.types.is_floating(col.type) and pa.types.is_integer(ftype.arrow)):
        return False
    valid = pc.drop_null(col)
    if len(valid) == 0:
        return True
    finite = pc.all(pc.is_finite(valid)).as_py()
    return bool(finite) and bool(pc.all(pc.equal(pc.floor(valid), valid)).as_py())


def _cast(fg: FeatureGroup, name: str, col: pa.ChunkedArray, ftype: FeatureType) -> pa.ChunkedArray:
    if col.type.equals(ftype.arrow):
        return col
    src = col.type
    if pa.types.is_dictionary(src):
        col = col.cast(src.value_type)
    # timestamps keep their instant: naive stays naive, aware goes to UTC
    if pa.types.is_timestamp(src) and pa.types.is_timestamp(ftype.arrow):  # noqa: SIM102
        if src.tz and not ftype.arrow.tz:
            col = col.cast(pa.timestamp(src.unit))
    try:
        return pc.cast(col, ftype.arrow, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise DatatypeMismatch(
            f'column "{name}" of feature group "{fg.name}" cannot be stored as {ftype.name}: {e}'
        ) from None
