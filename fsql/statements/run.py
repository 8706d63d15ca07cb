"""Run statement text against a store: parse, bind parameters, and hand
each statement to its executor (:mod:`fsql.statements.registry`) or, for a
plain query, to :func:`fsql.plan.plain.run_plain`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from fsql.online.api import online_sql
from fsql.params import bind
from fsql.plan.plain import run_plain
from fsql.sql.dialect import parse
from fsql.statements.registry import executor_for

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


def run(store: StoreCore, text: str, params: Sequence[Any] | None = None) -> pa.Table:
    """Run every statement in ``text``; return the last one's result.
    ``params`` bind ``$1, $2, ...``."""
    found = online_sql(store, text, params)  # key lookups seen before, from a cached plan
    if found is not None:
        return found
    result = pa.table({})
    for statement in parse(text):
        if params:
            statement = bind(statement, params)
        result = run_statement(store, statement)
    return result


def run_statement(store: StoreCore, statement: exp.Expr) -> pa.Table:
    executor = executor_for(statement)
    if executor is not None:
        return executor(store, statement)
    return run_plain(store, statement)
