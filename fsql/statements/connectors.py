"""Executors of the connector statements and of on-demand feature groups."""

from __future__ import annotations

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
from fsql.statements import sources
from fsql.statements.registry import executes

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


def _status(message: str) -> pa.Table:
    return pa.table({"status": [message]})


def _literal(node: exp.Expression) -> str:
    return str(node.this) if isinstance(node, exp.Literal) else node.sql()


@executes(CreateConnector)
def _create_connector(store: StoreCore, node: exp.Expr) -> pa.Table:
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
        sources.create_connector(
            store,
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


@executes(AlterConnector)
def _alter_connector(store: StoreCore, node: exp.Expr) -> pa.Table:
    name = node.this.name
    options = {
        _literal(prop.this): _literal(prop.args["value"]) for prop in node.args.get("options") or []
    }
    description = node.args.get("description")
    sources.alter_connector(
        store, name, options, description=description.this if description is not None else None
    )
    return _status(f"ALTER CONNECTOR {name}")


@executes(ShowConnectors)
def _show_connectors(store: StoreCore, node: exp.Expr) -> pa.Table:
    like = node.args.get("like")
    return sources.connectors_table(store, like.this if like is not None else None)


@executes(DescribeConnector)
def _describe_connector(store: StoreCore, node: exp.Expr) -> pa.Table:
    info = sources.connector_info(store, node.this.name)
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
def _drop_connector(store: StoreCore, node: exp.Expr) -> pa.Table:
    name = node.this.name
    try:
        sources.drop_connector(store, name)
    except UndefinedObject:
        if node.args.get("exists"):
            return _status(f"CONNECTOR {name} DOES NOT EXIST, SKIPPING")
        raise
    return _status(f"DROP CONNECTOR {name}")


@executes(CreateOnDemandFeatureGroup)
def _create_on_demand(store: StoreCore, node: exp.Expr) -> pa.Table:
    name = node.this.name
    version = node.args.get("version")
    description = node.args.get("description")
    metadata = {
        t.expressions[0].this: t.expressions[1].this for t in node.args.get("metadata") or []
    }
    event_time = node.args.get("event_time")
    if node.args.get("exists") and any(fg.name == name for fg in store.feature_groups()):
        return _status(f"FEATURE GROUP {name} EXISTS")
    sources.create_feature_group(
        store,
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
