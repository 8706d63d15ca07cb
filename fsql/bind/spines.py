"""The spine of ``SELECT FEATURES ... FROM spine AS OF spine.ts`` as an
engine relation: a file (``read_parquet('labels.parquet')``,
``read_csv(...)``) becomes the engine's ``file()``; any other relation (a
feature group, ``connector.table``, a subquery) is bound like plain SQL.
(A spine handed over from Python is an Arrow input of the plan.)"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sqlglot import exp

from fsql.bind.binder import bind
from fsql.errors import InvalidParameter, UndefinedObject

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


def file_relation(rel: exp.Expr) -> exp.Expr | None:
    """``read_parquet('f')`` / ``read_csv('f')`` as ``file(abs path, format)``;
    None for anything else."""
    if not (
        isinstance(rel, (exp.ReadParquet, exp.ReadCSV))
        or (isinstance(rel, exp.Anonymous) and rel.name.lower() in ("read_parquet", "read_csv"))
    ):
        return None
    args = rel.expressions if not isinstance(rel, exp.ReadCSV) else [rel.this, *rel.expressions]
    if isinstance(rel, exp.ReadParquet) or rel.name.lower() == "read_parquet":
        fmt = "Parquet"
    else:
        fmt = "CSVWithNames"
    path = args[0] if args else None
    if not isinstance(path, exp.Literal) or not path.is_string:
        raise InvalidParameter("read_parquet/read_csv take a quoted file path", sqlstate="22023")
    full = os.path.abspath(path.this)
    if not os.path.exists(full):
        raise UndefinedObject(f'file "{path.this}" does not exist', sqlstate="58P01")
    return exp.func("file", exp.Literal.string(full), exp.Literal.string(fmt))


def bind_spine(store: StoreCore, rel: exp.Expr, *, system_time_us: int | None = None) -> exp.Expr:
    """The spine relation, unaliased, with its tables pinned to the query's
    system time."""
    found = file_relation(rel)
    if found is not None:
        return found
    if isinstance(rel, exp.Subquery):
        bound = bind(store, rel, system_time_us=system_time_us)
    else:
        query = exp.select(exp.Star()).from_(rel)
        bound = bind(store, query, system_time_us=system_time_us).args["from_"].this
    bound.set("alias", None)
    return bound
