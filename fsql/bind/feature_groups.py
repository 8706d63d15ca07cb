"""Feature groups as tables: ``fg`` (latest version) and ``fg_vN``, of any
group kind, with ``FOR SYSTEM_TIME AS OF t`` (the state at t) and ``FOR
SYSTEM_TIME BETWEEN t1 AND t2`` (the rows committed in (t1, t2], with their
commit id and time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from fsql.bind.kinds import BindContext, relation_kind
from fsql.bind.sources import group_source
from fsql.bind.time import evaluate_time
from fsql.catalog import FeatureGroup
from fsql.errors import FeatureNotSupported
from fsql.store.offline import subquery

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


@relation_kind("feature_group", order=10)
def bind_feature_group(ctx: BindContext, table: exp.Table) -> exp.Expr | None:
    fg = ctx.group_named(table.name)
    if fg is None:
        return None
    alias = table.alias or table.name
    return subquery(versioned_source(ctx.store, fg, table, ctx.system_time_us), alias)


def versioned_source(
    store: StoreCore, fg: FeatureGroup, table: exp.Table, system_time_us: int | None = None
) -> exp.Expr:
    """The group's relation as the table reference's ``FOR SYSTEM_TIME``
    asks (``system_time_us`` pins a table without one)."""
    version = table.args.get("version")
    if version is None:
        return group_source(store, fg, system_time_us=system_time_us)
    kind = str(version.args.get("kind") or "").upper()
    if kind == "AS OF":
        return group_source(store, fg, system_time_us=evaluate_time(store, version.expression))
    if kind in ("BETWEEN", "FROM"):
        bounds = version.expression
        low, high = bounds.expressions if isinstance(bounds, exp.Tuple) else (bounds, None)
        return group_source(
            store,
            fg,
            since_us=evaluate_time(store, low),
            system_time_us=evaluate_time(store, high) if high is not None else None,
            hidden=True,
        )
    raise FeatureNotSupported(f"FOR SYSTEM_TIME {kind} is not supported")
