"""The relation of a feature group, whatever its kind: the one way every
reader (plain SQL, SELECT FEATURES, training datasets, previews) reads a
group's rows as of a system time.

Each group kind registers how its rows are read with
:func:`group_source_kind`; ``cached`` groups read the offline store here,
``on_demand`` groups their connector (:mod:`fsql.bind.on_demand`). A new
kind (aggregate groups, stream-fed groups) is one module and one
registration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from fsql.catalog import FeatureGroup
from fsql.errors import FeatureNotSupported
from fsql.store.offline import DIALECT, col, select_from, sort_key, subquery
from fsql.tables import restore_feature_types

if TYPE_CHECKING:
    from fsql.store.core import StoreCore

GroupSource = Callable[..., exp.Select]

GROUP_SOURCES: dict[str, GroupSource] = {}


def group_source_kind(kind: str) -> Callable[[GroupSource], GroupSource]:
    """Register how groups of ``kind`` (``FeatureGroup.kind``) are read:
    ``fn(store, fg, *, system_time_us, since_us, hidden) -> Select`` over
    every feature (and the hidden commit columns when ``hidden``)."""

    def register(fn: GroupSource) -> GroupSource:
        GROUP_SOURCES[kind] = fn
        return fn

    return register


def group_source(
    store: StoreCore,
    fg: FeatureGroup,
    *,
    system_time_us: int | None = None,
    since_us: int | None = None,
    hidden: bool = False,
    columns: list[str] | None = None,
) -> exp.Select:
    """A relation with the group's rows as they stood at ``system_time_us``
    (None: now), one row per (primary key, event time). ``columns`` projects
    (default: every feature)."""
    if fg.kind == "cached":  # the offline store projects itself
        return store.offline.source(
            fg, system_time_us=system_time_us, since_us=since_us, hidden=hidden, columns=columns
        )
    found = GROUP_SOURCES.get(fg.kind)
    if found is None:
        raise FeatureNotSupported(f'feature group "{fg.name}" has unknown kind {fg.kind!r}')
    relation = found(store, fg, system_time_us=system_time_us, since_us=since_us, hidden=hidden)
    if columns is None:
        return relation
    return select_from([col(n) for n in columns], subquery(relation, "od"))


class GroupRelations:
    """What a feature plan reads its groups through (``plan.source``)."""

    def __init__(self, store: StoreCore) -> None:
        self.store = store

    def source(self, fg: FeatureGroup, **kwargs: Any) -> exp.Select:
        return group_source(self.store, fg, **kwargs)


def read_group(
    store: StoreCore, fg: FeatureGroup, *, system_time_us: int | None = None
) -> pa.Table:
    """Every row of a group (as of a system time), in key and time order."""
    q = group_source(store, fg, system_time_us=system_time_us)
    q = exp.select(exp.Star()).from_(q.subquery("fg")).order_by(*[col(c) for c in sort_key(fg)])
    return restore_feature_types(store.engine.query(q.sql(DIALECT)), [fg])
