"""Connectors and on-demand feature groups: register, change and describe
them (for the statements and the Python API). Reading them is
:mod:`fsql.bind.on_demand`."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from fsql.bind.on_demand import DIALECT, check_access, open_connector, parse_query, source
from fsql.catalog import Feature, FeatureGroup
from fsql.catalog import connectors as catalog_connectors
from fsql.connectors.registry import make_connector
from fsql.errors import InvalidParameter
from fsql.store.schema import check_definition

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


CONNECTOR_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("type", pa.string()),
        ("options", pa.string()),
        ("description", pa.string()),
        ("feature_groups", pa.string()),
    ]
)


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def create_connector(
    store: StoreCore,
    name: str,
    type: str,
    options: Mapping[str, str],
    *,
    description: str = "",
    check: bool = True,
) -> catalog_connectors.Connector:
    """Validate the options, reach the source, then register the connector."""
    _check_name(name, "connector")
    connector = make_connector(name, type, options)
    check_access(store, connector)
    if check:
        connector.check(store.engine)
    stored = {k: v for k, v in connector.options.items()}
    return catalog_connectors.create_connector(
        store.catalog,
        project=store.project,
        name=name,
        type=connector.type_name,
        options=stored,
        description=description,
    )


def alter_connector(
    store: StoreCore,
    name: str,
    options: Mapping[str, str],
    *,
    description: str | None = None,
    check: bool = True,
) -> catalog_connectors.Connector:
    """Merge ``options`` into a connector's (an empty value removes one),
    validate, reach the source, then store. A failed check changes nothing."""
    record = catalog_connectors.get_connector(store.catalog, store.project, name)
    merged = dict(record.options)
    for key, value in options.items():
        key = key.lower()
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
        if value and key in ("password_env", "password_file"):
            # one secret reference replaces the other
            merged.pop("password_file" if key == "password_env" else "password_env", None)
    connector = make_connector(name, record.type, merged, connector_id=record.id)
    check_access(store, connector)
    if check:
        connector.check(store.engine)
    return catalog_connectors.update_connector(
        store.catalog, record, options=dict(connector.options), description=description
    )


def describe_connector(record: catalog_connectors.Connector) -> dict[str, Any]:
    return {
        "name": record.name,
        "type": record.type,
        "options": dict(record.options),
        "description": record.description,
    }


def create_feature_group(
    store: StoreCore,
    name: str,
    *,
    connector: str,
    query: str | exp.Expression,
    primary_key: str | Sequence[str],
    event_time: str | None = None,
    description: str = "",
    features: Mapping[str, str] | None = None,
    version: int | None = None,
    metadata: Mapping[str, str] | None = None,
) -> FeatureGroup:
    """Validate ``query`` at the source (and in the engine), then register
    the on-demand feature group. A failed check leaves the catalog as it was."""
    keys = [primary_key] if isinstance(primary_key, str) else list(primary_key)
    q = parse_query(query)
    conn = open_connector(store.catalog, store.project, connector)
    columns = conn.describe(q, store.engine)
    names = [c.name for c in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidParameter(
            f"{conn.label()}: the query returns more than one column named " + ", ".join(dupes),
            sqlstate="42701",
            hint="Give each column its own name with AS.",
        )
    types = {c.name: c.ftype for c in columns}
    check_definition(name, types, keys, event_time, features)
    descriptions = dict(features or {})
    fg_features = [Feature(c.name, c.ftype.name, descriptions.get(c.name, "")) for c in columns]
    draft = FeatureGroup(
        id=0,
        project=store.project,
        name=name,
        version=version or 1,
        kind="on_demand",
        description=description,
        primary_key=tuple(keys),
        event_time=event_time,
        online=False,
        has_upserts=False,
        features=tuple(fg_features),
        created_at_us=0,
        connector=connector,
        query=q.sql("postgres"),
    )
    # the engine must be able to run it too (table functions reach the source)
    probe = exp.select(exp.Star()).from_(
        source(store.engine, store.catalog, draft, verify=False).subquery(_ident("fg"))
    )
    store.engine.query(probe.limit(0).sql(DIALECT))
    return store.catalog.create_feature_group(
        project=store.project,
        name=name,
        version=version,
        kind="on_demand",
        features=fg_features,
        primary_key=keys,
        event_time=event_time,
        description=description,
        connector=connector,
        query=draft.query,
        metadata=metadata,
    )


RESERVED_CONNECTOR_NAMES = {"pg_catalog", "information_schema", "system", "default", "public"}


def _check_name(name: str, what: str) -> None:
    if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise InvalidParameter(
            f"{what} name {name!r} is not valid",
            sqlstate="42602",
            hint="Use letters, digits and underscores, starting with a letter.",
        )
    if what == "connector" and (
        name.lower() in RESERVED_CONNECTOR_NAMES or name.lower().startswith("fsql_")
    ):
        raise InvalidParameter(
            f"connector name {name!r} is reserved",
            sqlstate="42939",
            hint="Pick another name; connector names qualify tables (crm.customers).",
        )


def connector_info(store: StoreCore, name: str) -> dict[str, Any]:
    """A connector's settings (secret references, never values) and the
    on-demand groups that read it."""
    info = describe_connector(catalog_connectors.get_connector(store.catalog, store.project, name))
    info["feature_groups"] = sorted(
        {fg.name for fg in store.feature_groups() if fg.connector == name}
    )
    return info


def drop_connector(store: StoreCore, name: str) -> None:
    catalog_connectors.drop_connector(
        store.catalog, catalog_connectors.get_connector(store.catalog, store.project, name)
    )


def connectors_table(store: StoreCore, like: str | None = None) -> pa.Table:
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
