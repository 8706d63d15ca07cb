"""Online-store state per feature-group version, kept in the catalog
(``online_state``, catalog migration 5).

``last_commit_id`` is the last commit whose rows the online store holds.
A state that says ``ok`` while the group has a later committed commit is
behind the offline store: the process was killed between the offline
commit and the online write (the offline commit is durable first). When a
store opens, :func:`mark_behind` marks such groups stale; the next commit,
the first lookup or ``materialize`` then rebuilds their online rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, update

from fsql.catalog import Catalog
from fsql.catalog import models as m
from fsql.catalog.service import now_us

OK = "ok"
STALE = "stale"
# the error of a group marked stale because it missed committed commits
BEHIND = "the online rows are behind the offline store"


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


def behind_error(last_commit_id: int | None, last_committed: int) -> str:
    applied = f"commit {last_commit_id}" if last_commit_id is not None else "no commit"
    return (
        f"{BEHIND}: commit {last_committed} is committed offline, the online store has "
        f"{applied} (the process stopped between the offline commit and the online write)"
    )


def is_behind(state: OnlineState) -> bool:
    return state.status != OK and (state.error or "").startswith(BEHIND)


def mark_behind(catalog: Catalog) -> list[int]:
    """Mark stale every group whose state says ``ok`` but whose last
    committed commit is newer than the last one applied online; returns
    their feature-group ids. Catalog only: the online store is not touched
    (it may be a server that is down)."""
    t, c = m.online_state, m.commits
    last = (
        select(c.c.feature_group_id, func.max(c.c.id).label("last_id"))
        .where(c.c.state == "committed")
        .group_by(c.c.feature_group_id)
        .subquery()
    )
    behind = (
        select(t.c.feature_group_id, t.c.last_commit_id, last.c.last_id)
        .join(last, last.c.feature_group_id == t.c.feature_group_id)
        .where(t.c.status == OK)
        .where(or_(t.c.last_commit_id.is_(None), t.c.last_commit_id < last.c.last_id))
    )
    marked = []
    with catalog.engine.begin() as conn:
        for fg_id, applied, last_id in conn.execute(behind).all():
            conn.execute(
                update(t)
                .where(t.c.feature_group_id == fg_id, t.c.status == OK)
                .values(status=STALE, error=behind_error(applied, last_id), updated_at_us=now_us())
            )
            marked.append(int(fg_id))
    return marked
