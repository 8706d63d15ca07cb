"""Files as relations: ``read_parquet('labels.parquet')`` and
``read_csv(...)``, in FROM or as a spine, become the engine's ``file()``,
within the folders the store may read (:mod:`fsql.store.paths`)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from sqlglot import exp

from fsql.bind.confine import mark
from fsql.errors import InvalidParameter, UndefinedObject
from fsql.store.paths import check_readable


def file_relation(rel: exp.Expr, roots: Sequence[str] | None = None) -> exp.Expr | None:
    """``read_parquet('f')`` / ``read_csv('f')`` as ``file(abs path, format)``
    (42501 outside ``roots``, the folders the store may read; None: any);
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
    full = check_readable(roots, path.this)
    if not os.path.exists(full):
        raise UndefinedObject(f'file "{path.this}" does not exist', sqlstate="58P01")
    return mark(exp.func("file", exp.Literal.string(full), exp.Literal.string(fmt)))
