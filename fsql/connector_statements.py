"""Executors of the connector statements and of on-demand feature groups."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from fsql.catalog import connectors as catalog_connectors
from fsql.errors import DuplicateObject, UndefinedObject
from fsql.sql.connector_statements import (
    AlterConnector,
    CreateConnector,
    CreateOnDemandFeatureGroup,
    DescribeConnector,
    DropConnector,
    ShowConnectors,
)
from fsql.statements import executes

if TYPE_CHECKING:
    from fsql.store import Store

CONNECTOR_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("type", pa.string()),
        ("options", pa.string()),
        ("description", pa.string()),
        ("feature_groups", pa.string()),
    ]
)


def _status(message: str) -> pa.Table:
    return pa.table({"status": [message]})


def _literal(node: exp.Expression) -> str:
    return str(node.this) if isinstance(node, exp.Literal) else node.sql()


@executes(CreateConnector)
def _create_connector(store: Store, node: exp.Expr) -> pa.Table:
    name = node.this.name
    options = {
        _literal(prop.this): _literal(prop.args["value"]) for prop in node.args.get("options") or []
    }
    description = node.args.get("description")
    if node.args.get("exists") and any(
        c.name == name for c in catalog_connectors.connectors(store.catalog, store.project)
    ):
        return _status(f"CONNECTOR {name} EXISTS")
    try:
        store.create_connector(
            name,
            node.args["kind"].name,
            options,
            description=description.this if description is not None else "",
        )
    except DuplicateObject:
        if node.args.get("exists"):
            return _status(f"CONNECTOR {name} EXISTS")
        raise
    return _status(f"CREATE CONNECTOR {name}")


def connectors_table(store: Store, like: str | None = None) -> pa.Table:
    import fnmatch

    used: dict[str, list[str]] = {}
    for fg in store.feature_groups():
        if fg.kind == "on_demand" and fg.connector:
            used.setdefault(fg.connector, [])
            if fg.name not in used[fg.connector]:
                used[fg.connector].append(fg.name)
    rows = []
    for c in catalog_connectors.connectors(store.catalog, store.project):
        if like is not None:
            pattern = like.replace("%", "*").replace("_", "?")
            if not fnmatch.fnmatchcase(c.name, pattern):
                continue
        rows.append(
            {
                "name": c.name,
                "type": c.type,
                "options": json.dumps(c.options, sort_keys=True),
                "description": c.description,
                "feature_groups": ", ".join(used.get(c.name, [])),
            }
        )
    return pa.Table.from_pylist(rows, schema=CONNECTOR_SCHEMA)


@executes(AlterConnector)
def _alter_connector(store: Store, node: exp.Expr) -> pa.Table:
    name = node.this.name
    options = {
        _literal(prop.this): _literal(prop.args["value"]) for prop in node.args.get("options") or []
    }
    description = node.args.get("description")
    store.alter_connector(
        name, options, description=description.this if description is not None else None
    )
    return _status(f"ALTER CONNECTOR {name}")


@executes(ShowConnectors)
def _show_connectors(store: Store, node: exp.Expr) -> pa.Table:
    like = node.args.get("like")
    return connectors_table(store, like.this if like is not None else None)


@executes(DescribeConnector)
def _describe_connector(store: Store, node: exp.Expr) -> pa.Table:
    info = store.describe_connector(node.this.name)
    rows = [
        {"property": "name", "value": info["name"]},
        {"property": "type", "value": info["type"]},
        {"property": "description", "value": info["description"]},
    ]
    rows += [{"property": f"option {k}", "value": v} for k, v in sorted(info["options"].items())]
    rows.append({"property": "feature groups", "value": ", ".join(info["feature_groups"])})
    return pa.Table.from_pylist(
        rows, schema=pa.schema([("property", pa.string()), ("value", pa.string())])
    )


@executes(DropConnector)
def _drop_connector(store: Store, node: exp.Expr) -> pa.Table:
    name = node.this.name
    try:
        store.drop_connector(name)
    except UndefinedObject:
        if node.args.get("exists"):
            return _status(f"CONNECTOR {name} DOES NOT EXIST, SKIPPING")
        raise
    return _status(f"DROP CONNECTOR {name}")


@executes(CreateOnDemandFeatureGroup)
def _create_on_demand(store: Store, node: exp.Expr) -> pa.Table:
    name = node.this.name
    version = node.args.get("version")
    description = node.args.get("description")
    metadata = {
        t.expressions[0].this: t.expressions[1].this for t in node.args.get("metadata") or []
    }
    event_time = node.args.get("event_time")
    if node.args.get("exists") and any(fg.name == name for fg in store.feature_groups()):
        return _status(f"FEATURE GROUP {name} EXISTS")
    store.create_on_demand_feature_group(
        name,
        connector=node.args["connector"].name,
        query=node.args["query"],
        primary_key=[k.name for k in node.args["primary_key"]],
        event_time=event_time.name if event_time is not None else None,
        description=description.this if description is not None else "",
        version=int(version.this) if version is not None else None,
        metadata=metadata or None,
    )
    return _status(f"CREATE ON DEMAND FEATURE GROUP {name}")
