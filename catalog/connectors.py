"""Catalog service functions for connectors (named external sources).

Only options that are safe to show are stored: a secret is a reference
(``password_env``, ``password_file``), never its value. The caller (the
store) validates options and probes the source *before* calling
:func:`create_connector`, so a failed validation leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from fsql.catalog import models as m
from fsql.catalog.service import Catalog, now_us
from fsql.errors import DuplicateObject, FsqlError, UndefinedObject, did_you_mean


class DependentObjects(FsqlError):
    """DROP of an object that others still use."""

    sqlstate = "2BP01"


@dataclass(frozen=True)
class Connector:
    id: int
    project: str
    name: str
    type: str
    options: dict[str, str] = field(default_factory=dict, compare=False)
    description: str = ""
    created_at_us: int = 0


def _record(row, project: str) -> Connector:  # type: ignore[no-untyped-def]
    return Connector(
        id=row.id,
        project=project,
        name=row.name,
        type=row.type,
        options=dict(row.options or {}),
        description=row.description or "",
        created_at_us=row.created_at_us,
    )


def create_connector(
    catalog: Catalog,
    *,
    project: str,
    name: str,
    type: str,
    options: Mapping[str, str],
    description: str = "",
) -> Connector:
    with catalog.engine.begin() as conn:
        pid = catalog._project_id(conn, project)
        exists = conn.execute(
            select(m.connectors.c.id).where(
                m.connectors.c.project_id == pid, m.connectors.c.name == name
            )
        ).scalar()
        if exists is not None:
            raise DuplicateObject(
                f'connector "{name}" already exists',
                hint="Drop it first (DROP CONNECTOR), or pick another name.",
            )
        try:
            conn.execute(
                m.connectors.insert().values(
                    project_id=pid,
                    name=name,
                    type=type,
                    options=dict(options),
                    description=description or "",
                    created_at_us=now_us(),
                )
            )
        except IntegrityError:
            raise DuplicateObject(f'connector "{name}" already exists') from None
    return get_connector(catalog, project, name)


def connectors(catalog: Catalog, project: str) -> list[Connector]:
    with catalog.engine.connect() as conn:
        pid = catalog._project_id(conn, project)
        rows = conn.execute(
            select(m.connectors)
            .where(m.connectors.c.project_id == pid)
            .order_by(m.connectors.c.name)
        )
        return [_record(r, project) for r in rows]


def get_connector(catalog: Catalog, project: str, name: str) -> Connector:
    with catalog.engine.connect() as conn:
        pid = catalog._project_id(conn, project)
        row = conn.execute(
            select(m.connectors).where(
                m.connectors.c.project_id == pid, m.connectors.c.name == name
            )
        ).first()
    if row is None:
        names = [c.name for c in connectors(catalog, project)]
        raise UndefinedObject(
            f'connector "{name}" does not exist',
            sqlstate="42704",  # undefined_object: a connector is not a table
            hint=did_you_mean(name, names) or "SHOW CONNECTORS lists them.",
        )
    return _record(row, project)


def update_connector(
    catalog: Catalog,
    connector: Connector,
    *,
    options: Mapping[str, str],
    description: str | None = None,
) -> Connector:
    """Replace a connector's options (already validated by the caller)."""
    values: dict[str, object] = {"options": dict(options)}
    if description is not None:
        values["description"] = description
    with catalog.engine.begin() as conn:
        conn.execute(update(m.connectors).where(m.connectors.c.id == connector.id).values(**values))
    return get_connector(catalog, connector.project, connector.name)


def drop_connector(catalog: Catalog, connector: Connector) -> None:
    """Drop a connector no feature group uses."""
    users = sorted(
        {
            fg.name
            for fg in catalog.feature_groups(connector.project)
            if fg.kind == "on_demand" and fg.connector == connector.name
        }
    )
    if users:
        raise DependentObjects(
            f'cannot drop connector "{connector.name}": on-demand feature groups use it: '
            + ", ".join(users),
            hint="Drop those feature groups first.",
        )
    with catalog.engine.begin() as conn:
        conn.execute(delete(m.connectors).where(m.connectors.c.id == connector.id))
