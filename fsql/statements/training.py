"""Executors of the training-dataset statements (see
:mod:`fsql.sql.training_statements`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa
from sqlglot import exp

from fsql.errors import FeatureNotSupported, FsqlError, InvalidParameter
from fsql.sql.training_statements import (
    CreateTrainingDataset,
    DescribeTrainingDataset,
    DropTrainingDataset,
    RebuildTrainingDataset,
    ShowTrainingDatasets,
)
from fsql.statements.registry import executes
from fsql.store.paths import check_endpoint, check_writable
from fsql.training import dataset as td

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


def _int(node: exp.Expression | None) -> int | None:
    if node is None:
        return None
    return int(node.name)


def option_value(node: exp.Expression) -> Any:
    """A literal option value: string, number, boolean, TIMESTAMP '...', or a
    bare word (taken as a string)."""
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        return int(text) if text.lstrip("-").isdigit() else float(text)
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        return -option_value(node.this)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
        return node.this.this  # TIMESTAMP '2024-06-01'
    if isinstance(node, exp.Column) and not node.table:
        return node.name
    if isinstance(node, exp.Identifier | exp.Var):
        return node.name
    raise InvalidParameter(
        f"option value {node.sql(dialect='postgres')} is not a literal",
        hint="Use a quoted string, a number or true/false.",
    )


def check_location(store: StoreCore, location: Any) -> None:
    """A training dataset is written only under the store's write roots, or
    to an object store at one of its allowed endpoints."""
    text = str(location or "").strip()
    if not text:
        return
    if text.startswith("s3://"):
        if store.endpoints is not None:
            query = dict(parse_qsl(urlsplit(text).query))
            check_endpoint(
                store.endpoints, query.get("endpoint_override", "s3.amazonaws.com"), "location"
            )
        return
    path = text[len("file://") :] if text.startswith("file://") else text
    roots = store.write_roots
    check_writable(None if roots is None else [*roots, str(store.path)], path)


@executes(CreateTrainingDataset)
def _create(store: StoreCore, node: exp.Expr) -> pa.Table:
    options: dict[str, Any] = {}
    for pair in node.args.get("options") or []:
        key, value = pair.expressions
        name = key.name.lower()
        if name in options:
            raise InvalidParameter(f"option {name!r} is given twice")
        options[name] = option_value(value)
    check_location(store, options.get("location"))
    description = node.args.get("description")
    query = node.args["query_text"].this
    if node.args.get("parameters") is not None:
        raise FeatureNotSupported(
            "parameters ($1, ?) in CREATE TRAINING DATASET are not supported",
            hint="The query text is recorded so the dataset can be rebuilt; "
            "write the values into the query.",
        )
    try:
        handle = td.create(
            store,
            node.this.name,
            query,
            version=_int(node.args.get("version")),
            description=description.this if description is not None else "",
            options=options,
        )
    except FsqlError as e:
        offset = node.args.get("query_position")
        if e.sqlstate == "42601" and e.position is not None and offset is not None:
            e.position += int(offset.this)
        raise
    r = handle.record
    return pa.table(
        {
            "name": [r.name],
            "version": pa.array([r.version], pa.int32()),
            "format": [r.format],
            "rows": pa.array([r.row_count], pa.int64()),
            "splits": [", ".join(f"{s}:{n}" for s, n in r.split_counts.items())],
            "location": [r.location],
            "checksum": [r.checksum],
        }
    )


@executes(ShowTrainingDatasets)
def _show(store: StoreCore, node: exp.Expr) -> pa.Table:
    like = node.args.get("like")
    return td.listing(store, like.this if like is not None else None)


@executes(DescribeTrainingDataset)
def _describe(store: StoreCore, node: exp.Expr) -> pa.Table:
    handle = td.get(store, node.this.name, _int(node.args.get("version")))
    return td.describe_table(handle)


@executes(DropTrainingDataset)
def _drop(store: StoreCore, node: exp.Expr) -> pa.Table:
    name = node.this.name
    version = _int(node.args.get("version"))
    n = td.drop(store, name, version, missing_ok=bool(node.args.get("exists")))
    if n == 0:
        return pa.table({"status": [f"training dataset {name} does not exist, skipped"]})
    what = f"version {version}" if version is not None else f"{n} version{'s' if n != 1 else ''}"
    return pa.table({"status": [f"dropped training dataset {name} {what}"]})


@executes(RebuildTrainingDataset)
def _rebuild(store: StoreCore, node: exp.Expr) -> pa.Table:
    """Re-run the recorded query at the recorded system time; one row saying
    whether the result is identical to what was recorded."""
    result = td.rebuild(store, node.this.name, _int(node.args.get("version")))
    return pa.table(
        {
            "name": [result.name],
            "version": pa.array([result.version], pa.int32()),
            "splits": [", ".join(f"{s}:{n}" for s, n in result.split_counts.items())],
            "identical": [result.identical],
            "checksum_match": [result.checksum_match],
            "rows_identical": pa.array([result.rows_identical], pa.bool_()),
            "restored": [result.restored],
            "checksum": [result.checksum],
            "recorded_checksum": [result.recorded_checksum],
        }
    )
