"""Arrow is the one result type; this turns what users hand us into it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from fsql.errors import FsqlError, InvalidParameter

if TYPE_CHECKING:
    from fsql.catalog import FeatureGroup


def as_arrow(data: Any) -> pa.Table:
    """A pyarrow Table from a Table, RecordBatch(Reader), pandas or polars
    DataFrame, or a dict of columns."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    if isinstance(data, dict):
        return pa.table(data)
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        return data.to_arrow()
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    raise InvalidParameter(
        f"cannot read a {type(data).__name__} as a table",
        hint="Pass a pyarrow Table, a pandas or polars DataFrame, or a dict of columns.",
    )


TYPE_KEY = b"fsql.type"  # field metadata: the feature type an Arrow type does not say


def restore_feature_types(
    table: pa.Table,
    groups: Iterable[FeatureGroup],
    *,
    binary: Iterable[str] = (),
    check_utf8: bool = False,
) -> pa.Table:
    """Give a result the types the feature groups it read declare, where
    Arrow from the engine lost them. ClickHouse keeps ``bytea`` as ``String``
    and chDB hands every String back as an Arrow string: the columns named as
    bytea features (and ``binary``) come back as binary. With ``check_utf8``,
    every other text column (nested ones too) must hold valid UTF-8: when a
    bytea feature was read, a string column that is not valid UTF-8 (a value
    computed over bytea) becomes binary; otherwise it is SQLSTATE 22021
    (:class:`CharacterNotInRepertoire`), as PostgreSQL refuses such bytes in
    text. So no layer ever holds an invalid Arrow string. String columns
    named as json features are marked with ``fsql.type: json`` field
    metadata (the Postgres-wire server then describes them as json)."""
    groups = list(groups)
    names = {f.name for fg in groups for f in fg.features if f.type == "bytea"} | set(binary)
    json = {f.name for fg in groups for f in fg.features if f.type in ("json", "jsonb")}
    if not names and not json and not check_utf8:
        return table
    columns = list(table.columns)
    fields = list(table.schema)
    changed = False
    for i, f in enumerate(fields):
        large = pa.types.is_large_string(f.type)
        if not (large or pa.types.is_string(f.type)):
            if check_utf8 and _holds_strings(f.type):
                _check_utf8(columns[i], f.name)
            continue
        if f.name in json and f.name not in names:
            fields[i] = f.with_metadata({**(f.metadata or {}), TYPE_KEY: b"json"})
            changed = True
            if check_utf8:
                _check_utf8(columns[i], f.name)
            continue
        if f.name not in names:
            if not check_utf8:
                continue
            if not names:
                _check_utf8(columns[i], f.name)
                continue
            try:
                columns[i].validate(full=True)
                continue
            except pa.ArrowInvalid:
                pass
        target = pa.large_binary() if large else pa.binary()
        columns[i] = columns[i].cast(target)
        fields[i] = f.with_type(target)
        changed = True
    if not changed:
        return table
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))


class CharacterNotInRepertoire(FsqlError):
    """Bytes that are not UTF-8 where text is expected."""

    sqlstate = "22021"


def _holds_strings(t: pa.DataType) -> bool:
    """Whether a nested type (list, struct, map) has text somewhere inside."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return True
    if pa.types.is_dictionary(t):
        return _holds_strings(t.value_type)
    return any(_holds_strings(t.field(i).type) for i in range(t.num_fields))


def _check_utf8(column: pa.ChunkedArray, name: str) -> None:
    try:
        column.validate(full=True)
    except pa.ArrowInvalid:
        raise CharacterNotInRepertoire(
            f'invalid byte sequence for encoding "UTF8" in result column "{name}"',
            hint="The query computes text that is not UTF-8 (unhex, substring of "
            "multi-byte text, ...); binary data belongs in a bytea feature, or wrap the "
            "value in hex() / base64Encode().",
        ) from None
