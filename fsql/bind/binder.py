"""The binder: every table reference of a parsed statement, replaced by the
engine relation it means.

One walk over the tree; each reference is offered to the relation kinds of
:mod:`fsql.bind.kinds` in order (feature groups of every group kind,
training datasets, ``connector.table``, and whatever the layers above
register). A bare name no kind claims is 42P01. CTE names are left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

# the relation kinds of this layer (each registers itself)
from fsql.bind import (  # noqa: F401
    connector_tables,
    feature_groups,
    on_demand,
)
from fsql.bind.kinds import BindContext, kinds
from fsql.errors import UndefinedObject, did_you_mean, position_of

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


def bind(store: StoreCore, statement: exp.Expr, *, system_time_us: int | None = None) -> exp.Expr:
    """A copy of ``statement`` with its tables bound. ``system_time_us``
    pins tables without their own ``FOR SYSTEM_TIME`` to that system time.
    Arrow inputs the relations need ride on the copy's
    ``meta['fsql_inputs']``."""
    statement = statement.copy()
    ctx = BindContext(store, statement, system_time_us)
    ctes = {c.alias_or_name for c in statement.find_all(exp.CTE)}
    for table in list(statement.find_all(exp.Table)):
        if table.db and table.name:
            bound = _first(ctx, table, qualified=True)
            if bound is not None:
                table.replace(bound)
            continue
        if table.name in ctes or not table.name:
            continue
        bound = _first(ctx, table, qualified=False)
        if bound is None:
            raise UndefinedObject(
                f'relation "{table.name}" does not exist',
                position=position_of(table),
                hint=did_you_mean(table.name, ctx.group_names()),
            )
        table.replace(bound)
    return statement


def _first(ctx: BindContext, table: exp.Table, *, qualified: bool) -> exp.Expr | None:
    for kind in kinds(qualified=qualified):
        bound = kind.bind(ctx, table)
        if bound is not None:
            return bound
    return None
