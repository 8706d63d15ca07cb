"""Versioned catalog migrations.

``MIGRATIONS`` is ordered; each step runs once, in one transaction, and is
recorded in ``schema_migrations``. Never edit a step that has shipped: add a
new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select

from fsql.catalog import models

Step = Callable[[Connection], None]


def _core_tables(conn: Connection) -> None:
    models.metadata.create_all(
        conn,
        tables=[
            models.projects,
            models.feature_groups,
            models.features,
            models.fg_metadata,
            models.commits,
        ],
    )


def _connectors(conn: Connection) -> None:
    models.metadata.create_all(conn, tables=[models.connectors])


def _training_datasets(conn: Connection) -> None:
    models.metadata.create_all(
        conn,
        tables=[
            models.training_datasets,
            models.training_dataset_features,
            models.training_dataset_statistics,
        ],
    )


def _server_users(conn: Connection) -> None:
    models.metadata.create_all(conn, tables=[models.server_users])


def _online_state(conn: Connection) -> None:
    models.metadata.create_all(conn, tables=[models.online_state])


MIGRATIONS: tuple[tuple[int, str, Step], ...] = (
    (1, "core tables", _core_tables),
    (2, "connectors", _connectors),
    (3, "training datasets", _training_datasets),
    (4, "server users", _server_users),
    (5, "online store state", _online_state),
)


def applied_versions(engine: Engine) -> set[int]:
    if not inspect(engine).has_table(models.schema_migrations.name):
        return set()
    with engine.connect() as conn:
        return set(conn.execute(select(models.schema_migrations.c.version)).scalars())


def migrate(engine: Engine) -> list[int]:
    """Apply every step not yet applied; return the versions applied now."""
    models.metadata.create_all(engine, tables=[models.schema_migrations])
    done = applied_versions(engine)
    applied = []
    for version, name, step in MIGRATIONS:
        if version in done:
            continue
        with engine.begin() as conn:
            step(conn)
            conn.execute(
                models.schema_migrations.insert().values(
                    version=version, name=name, applied_at_us=int(time.time() * 1e6)
                )
            )
        applied.append(version)
    return applied
