"""Online-store state per feature-group version, kept in the catalog
(``online_state``, catalog migration 5)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select

from fsql.catalog import Catalog
from fsql.catalog import models as m
from fsql.catalog.service import now_us

OK = "ok"
STALE = "stale"


@dataclass(frozen=True)
class OnlineState:
    status: str  # 'ok' | 'stale'
    last_commit_id: int | None
    error: str | None
    updated_at_us: int


def get(catalog: Catalog, fg_id: int) -> OnlineState | None:
    t = m.online_state
    with catalog.engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.feature_group_id == fg_id)).first()
    if row is None:
        return None
    return OnlineState(row.status, row.last_commit_id, row.error, row.updated_at_us)


def put(
    catalog: Catalog,
    fg_id: int,
    status: str,
    *,
    last_commit_id: int | None = None,
    error: str | None = None,
    keep_commit: bool = False,
) -> None:
    t = m.online_state
    with catalog.engine.begin() as conn:
        if keep_commit:
            last_commit_id = conn.execute(
                select(t.c.last_commit_id).where(t.c.feature_group_id == fg_id)
            ).scalar()
        conn.execute(delete(t).where(t.c.feature_group_id == fg_id))
        conn.execute(
            t.insert().values(
                feature_group_id=fg_id,
                status=status,
                last_commit_id=last_commit_id,
                error=error,
                updated_at_us=now_us(),
            )
        )


def clear(catalog: Catalog, fg_id: int) -> None:
    t = m.online_state
    with catalog.engine.begin() as conn:
        conn.execute(delete(t).where(t.c.feature_group_id == fg_id))
