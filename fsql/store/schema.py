"""What makes a feature group definition valid: its columns, name, primary
key and event time (shared by cached and on-demand groups)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa

from fsql.errors import DatatypeMismatch, DuplicateColumn, InvalidParameter, UndefinedColumn
from fsql.types import FeatureType, from_arrow, from_name


def columns_of(
    schema: Mapping[str, str] | pa.Schema | None, table: pa.Table | None
) -> dict[str, FeatureType]:
    names: list[str] = []
    if isinstance(schema, pa.Schema):
        names = schema.names
    elif schema is None and table is not None:
        names = table.column_names
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DuplicateColumn(f'column "{twice[0]}" specified more than once')
    if isinstance(schema, pa.Schema):
        return {f.name: from_arrow(f.type) for f in schema}
    if schema is not None:
        return {n: from_name(t) for n, t in schema.items()}
    if table is None:
        raise InvalidParameter(
            "a feature group needs a schema or data to take it from",
            hint="Pass data=..., or schema={'column': 'type', ...}.",
        )
    return {f.name: from_arrow(f.type) for f in table.schema}


def check_definition(
    name: str,
    columns: Mapping[str, FeatureType],
    keys: Sequence[str],
    event_time: str | None,
    features: Mapping[str, str] | None,
) -> None:
    if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise InvalidParameter(
            f"feature group name {name!r} is not valid",
            sqlstate="42602",
            hint="Use letters, digits and underscores, starting with a letter.",
        )
    if not keys:
        raise InvalidParameter("a feature group needs a primary key")
    for role, cols in (("primary key", keys), ("event time", [event_time] if event_time else [])):
        for c in cols:
            if c not in columns:
                raise UndefinedColumn(
                    f'{role} column "{c}" is not a column of "{name}"',
                    hint="Columns: " + ", ".join(columns),
                )
    if event_time and not columns[event_time].is_timestamp:
        raise DatatypeMismatch(
            f'event time column "{event_time}" has type {columns[event_time].name}; '
            "it must be a timestamp, timestamptz or date",
            sqlstate="42804",
        )
    for key in keys:
        t = columns[key]
        if t.name.endswith("[]") or t.name in ("real", "double precision", "json"):
            hint = None
            if t.name in ("real", "double precision"):
                hint = (
                    "A key is an integer, text, date or timestamp. pandas turns an integer "
                    "column with a missing value into float64: use the nullable 'Int64' dtype "
                    "(the missing keys are then reported as nulls), or drop those rows."
                )
            raise DatatypeMismatch(
                f'primary key column "{key}" has type {t.name}, which cannot be a key',
                sqlstate="42804",
                hint=hint,
            )
    unknown = [f for f in (features or {}) if f not in columns]
    if unknown:
        raise UndefinedColumn(
            "descriptions given for unknown features: " + ", ".join(unknown),
            hint="Columns: " + ", ".join(columns),
        )
