"""The binder: every table reference of a parsed statement, replaced by the
engine relation it means.

One walk over the tree; each reference is offered to the relation kinds of
:mod:`fsql.bind.kinds` in order (feature groups of every group kind,
training datasets, ``connector.table``, and whatever the layers above
register); ``public.name`` (and ``project.public.name``) is the bare name,
as PostgreSQL's default schema. A bare name no kind claims is 42P01. CTE
names are left alone. What no kind produced never reaches the engine: other
qualified names, table functions and engine functions are refused
(:mod:`fsql.bind.confine`), so the bound statement reads only fsql's own
relations.
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
from fsql.bind.confine import (
    check_functions,
    check_table_function,
    is_public,
    mark,
    refuse_qualified,
    user_nodes,
)
from fsql.bind.files import file_relation
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
    check_functions(statement)
    ctx = BindContext(store, statement, system_time_us)
    ctes = {c.alias_or_name for c in statement.find_all(exp.CTE)}
    for table in [n for n in user_nodes(statement) if isinstance(n, exp.Table)]:
        if not table.name:
            bound = _table_function(store, table)
        elif table.db and not is_public(store.project, table):
            bound = _first(ctx, table, qualified=True)
            if bound is None:
                raise refuse_qualified(table)
        elif table.name in ctes and not table.db:
            continue
        else:
            bound = _first(ctx, table, qualified=False)
            if bound is None:
                raise UndefinedObject(
                    f'relation "{table.name}" does not exist',
                    position=position_of(table),
                    hint=did_you_mean(table.name, ctx.group_names()),
                )
        if bound is not None:
            table.replace(mark(bound))
    return statement


def _table_function(store: StoreCore, table: exp.Table) -> exp.Expr | None:
    """A function in FROM: a file (``read_parquet``/``read_csv``) or a pure
    table function (left as it is, None); anything else is refused."""
    found = file_relation(table.this, store.read_roots)
    if found is not None:
        alias = table.args.get("alias")
        return exp.Table(this=found, alias=alias.copy() if alias is not None else None)
    check_table_function(table)
    return None


def _first(ctx: BindContext, table: exp.Table, *, qualified: bool) -> exp.Expr | None:
    for kind in kinds(qualified=qualified):
        bound = kind.bind(ctx, table)
        if bound is not None:
            return bound
    return None
