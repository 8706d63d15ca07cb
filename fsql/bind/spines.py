"""The spine of ``SELECT FEATURES ... FROM spine AS OF spine.ts`` as an
engine relation: a file (``read_parquet('labels.parquet')``,
``read_csv(...)``) becomes the engine's ``file()``; any other relation (a
feature group, ``connector.table``, a subquery) is bound like plain SQL.
(A spine handed over from Python is an Arrow input of the plan.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from fsql.bind.binder import bind
from fsql.bind.files import file_relation

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


def bind_spine(store: StoreCore, rel: exp.Expr, *, system_time_us: int | None = None) -> exp.Expr:
    """The spine relation, unaliased, with its tables pinned to the query's
    system time."""
    found = file_relation(rel, store.read_roots)
    if found is not None:
        return found
    if isinstance(rel, exp.Subquery):
        bound = bind(store, rel, system_time_us=system_time_us)
    else:
        query = exp.select(exp.Star()).from_(rel)
        bound = bind(store, query, system_time_us=system_time_us).args["from_"].this
    bound.set("alias", None)
    return bound
