"""Run statement text against a store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from fsql.errors import UndefinedObject, did_you_mean
from fsql.offline import DIALECT
from fsql.sql.dialect import parse
from fsql.statements import executor_for

if TYPE_CHECKING:
    from fsql.store import Store


def run(store: Store, text: str) -> pa.Table:
    """Run every statement in ``text``; return the last one's result."""
    result = pa.table({})
    for statement in parse(text):
        result = run_statement(store, statement)
    return result


def run_statement(store: Store, statement: exp.Expr) -> pa.Table:
    executor = executor_for(statement)
    if executor is not None:
        return executor(store, statement)
    return run_plain(store, statement)


def run_plain(store: Store, statement: exp.Expr) -> pa.Table:
    """Plain SQL: feature groups are tables (``fg`` latest, ``fg_vN``)."""
    rewritten = bind_feature_groups(store, statement)
    return store.engine.query(rewritten.sql(DIALECT))


def bind_feature_groups(store: Store, statement: exp.Expression) -> exp.Expression:
    statement = statement.copy()
    ctes = {c.alias_or_name for c in statement.find_all(exp.CTE)}
    fgs = store.feature_groups()
    names = {fg.name for fg in fgs}
    by_version = {fg.qualified_name: fg for fg in fgs}
    latest = {fg.name: fg for fg in fgs}  # sorted by version: last wins
    for table in list(statement.find_all(exp.Table)):
        if table.db or table.name in ctes or not table.name:
            continue
        fg = latest.get(table.name) or by_version.get(table.name)
        if fg is None:
            raise UndefinedObject(
                f'relation "{table.name}" does not exist',
                hint=did_you_mean(table.name, sorted(names | set(by_version))),
            )
        alias = table.alias or table.name
        table.replace(store.offline.source(fg).subquery(exp.to_identifier(alias, quoted=True)))
    return statement
