"""The registry of statement executors: node class -> ``(store, node) -> Table``.

Modules register with :func:`executes` and are listed in
``EXECUTOR_MODULES`` so that what the store can run is visible in one place.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

if TYPE_CHECKING:
    from fsql.store.core import StoreCore

Executor = Callable[["StoreCore", exp.Expr], pa.Table]

EXECUTORS: dict[type[exp.Expr], Executor] = {}

EXECUTOR_MODULES: tuple[str, ...] = (
    "fsql.statements.feature_groups",
    "fsql.statements.connectors",
    "fsql.statements.training",
)

_loaded = False


def executes(node_type: type[exp.Expr]) -> Callable[[Executor], Executor]:
    def register(fn: Executor) -> Executor:
        EXECUTORS[node_type] = fn
        return fn

    return register


def load() -> None:
    global _loaded
    if _loaded:
        return
    for module in EXECUTOR_MODULES:
        importlib.import_module(module)
    _loaded = True


def executor_for(node: exp.Expr) -> Executor | None:
    load()
    for cls in type(node).__mro__:
        if cls in EXECUTORS:
            return EXECUTORS[cls]
    return None
