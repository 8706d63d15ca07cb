"""Reading the offline store's latest row per primary key, and writing it to
the online store: after every commit (that commit's rows), as a backfill or
repair (``fsql materialize FG [--since TIME]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from fsql.catalog import FeatureGroup
from fsql.online.base import Codec, Row, column_to_prims
from fsql.store.offline import COMMIT_ID, COMMIT_TIME, DIALECT, col, micros_literal, table_ref

if TYPE_CHECKING:
    from fsql.online.service import OnlineService

DAY_US = 86_400_000_000


def _latest_by_key(fg: FeatureGroup, rel: exp.Expression) -> exp.Select:
    names = [f.name for f in fg.features] + [COMMIT_ID]
    order: list[exp.Expression] = [col(k) for k in fg.primary_key]
    if fg.event_time:
        order.append(exp.Ordered(this=col(fg.event_time), desc=True))
    order.append(exp.Ordered(this=col(COMMIT_ID), desc=True))
    q = exp.select(*[col(n) for n in names]).from_(rel).order_by(*order)
    q.set(
        "limit",
        exp.Limit(expression=exp.Literal.number(1), expressions=[col(k) for k in fg.primary_key]),
    )
    return q


def offline_latest(
    service: OnlineService,
    fg: FeatureGroup,
    *,
    system_time_us: int | None = None,
    since_us: int | None = None,
    commit_id: int | None = None,
) -> pa.Table:
    """The latest row per primary key (greatest event time, then commit id),
    with ``_commit_id``: of the whole group as of ``system_time_us``, of the
    commits after ``since_us``, or of one commit."""
    store = service.store
    if commit_id is not None:
        raw = exp.select(exp.Star()).from_(table_ref(fg))
        raw = raw.where(exp.EQ(this=col(COMMIT_ID), expression=exp.Literal.number(commit_id)))
        rel: exp.Expression = raw.subquery("c")
    elif since_us is not None:
        raw = exp.select(exp.Star()).from_(table_ref(fg))
        raw = raw.where(exp.GT(this=col(COMMIT_TIME), expression=micros_literal(since_us)))
        if system_time_us is not None:
            raw = raw.where(
                exp.LTE(this=col(COMMIT_TIME), expression=micros_literal(system_time_us))
            )
        rel = raw.subquery("c")
    else:
        rel = store.offline.source(fg, system_time_us=system_time_us, hidden=True).subquery("s")
    return store.engine.query(_latest_by_key(fg, rel).sql(DIALECT))


def encode_rows(codec: Codec, rows: pa.Table) -> list[Row]:
    fg = codec.fg
    n = rows.num_rows
    if fg.event_time:
        ftype = fg.feature(fg.event_time).ftype  # type: ignore[union-attr]
        event = column_to_prims(rows.column(fg.event_time), ftype)
        if pa.types.is_date(ftype.arrow):
            event = [d * DAY_US for d in event]
    else:
        event = [0] * n
    commits = rows.column(COMMIT_ID).to_pylist()
    return codec.encode(rows, event, commits)


def last_commit(service: OnlineService, fg: FeatureGroup) -> tuple[int | None, int | None]:
    """(id, commit time) of the feature group's last committed commit."""
    commits = service.store.catalog.commits(fg, state="committed")
    if not commits:
        return None, None
    c = commits[-1]
    return c.id, c.commit_time_us
