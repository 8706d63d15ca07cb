"""Run statement text against a store: parse, bind parameters, and hand
each statement to its executor (:mod:`fsql.statements.registry`) or, for a
plain query, to :func:`fsql.plan.plain.run_plain`; :func:`stream` is the
same with the result as a stream of record batches.

Two checks every statement gets here, so no Python error escapes for them:
a statement nested deeper than the parser (or a later tree walk) can
recurse is SQLSTATE 54001, and a number literal beyond the range of a
double (``1e400``: the engine has no numeric type that holds it) is 22003.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from fsql.errors import FsqlError
from fsql.online.api import online_sql
from fsql.params import bind
from fsql.plan.features import plan_features, stream_plan
from fsql.plan.plain import STREAM_BATCH_ROWS, run_plain, stream_plain, table_reader
from fsql.sql.dialect import parse
from fsql.sql.nodes import SelectFeatures
from fsql.statements.registry import executor_for
from fsql.store.assign import NumericValueOutOfRange

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


class StatementTooComplex(FsqlError):
    """A statement nested too deeply to parse or plan (PostgreSQL's
    ``statement_too_complex``)."""

    sqlstate = "54001"


def run(store: StoreCore, text: str, params: Sequence[Any] | None = None) -> pa.Table:
    """Run every statement in ``text``; return the last one's result.
    ``params`` bind ``$1, $2, ...``."""
    try:
        found = online_sql(store, text, params)  # key lookups seen before, from a cached plan
        if found is not None:
            return found
        statements = parse(text)
    except RecursionError:
        raise too_deeply_nested(text) from None
    result = pa.table({})
    for statement in statements:
        if params:
            statement = bind(statement, params)
        result = run_statement(store, statement)
    return result


def run_statement(store: StoreCore, statement: exp.Expr) -> pa.Table:
    check_numbers(statement)
    try:
        executor = executor_for(statement)
        if executor is not None:
            return executor(store, statement)
        return run_plain(store, statement)
    except RecursionError:
        raise too_deeply_nested(None) from None


def stream(
    store: StoreCore,
    text: str,
    params: Sequence[Any] | None = None,
    batch_rows: int = STREAM_BATCH_ROWS,
) -> pa.RecordBatchReader:
    """:func:`run` with the last statement's result as a stream of record
    batches. A query (plain SQL, or SELECT FEATURES without a spine) streams
    from the engine as it is read; every other result (other statements,
    Arrow inputs, a spine, online lookups) is the materialized table read
    as a stream. Statements before the last run as :func:`run` runs them."""
    try:
        found = online_sql(store, text, params)
        if found is not None:
            return table_reader(found)
        statements = parse(text)
    except RecursionError:
        raise too_deeply_nested(text) from None
    if not statements:
        return table_reader(pa.table({}))
    if params:
        statements = [bind(statement, params) for statement in statements]
    for statement in statements[:-1]:
        run_statement(store, statement)
    return stream_statement(store, statements[-1], batch_rows)


def stream_statement(
    store: StoreCore, statement: exp.Expr, batch_rows: int = STREAM_BATCH_ROWS
) -> pa.RecordBatchReader:
    """:func:`run_statement` as a stream (see :func:`stream`)."""
    check_numbers(statement)
    try:
        if isinstance(statement, SelectFeatures):
            return stream_plan(store, plan_features(store, statement), batch_rows)
        executor = executor_for(statement)
        if executor is not None:
            return table_reader(executor(store, statement))
        return stream_plain(store, statement, batch_rows)
    except RecursionError:
        raise too_deeply_nested(None) from None


def check_numbers(statement: exp.Expr) -> None:
    """22003 for a number literal a double cannot hold (``1e400``, 400
    digits): the engine would reject its syntax, not its value."""
    for literal in statement.find_all(exp.Literal):
        if not literal.is_number:
            continue
        text = literal.this
        if not isinstance(text, str) or ("e" not in text.lower() and len(text) < 300):
            continue  # finite for sure: no exponent, fewer than 309 digits
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isinf(value):
            start = literal.meta.get("start")
            raise NumericValueOutOfRange(
                f"numeric value out of range: {_shorten(text)}",
                position=start + 1 if isinstance(start, int) else None,
                hint="Numbers up to about 1.8e308 (double precision) can be used.",
            )


def too_deeply_nested(text: str | None) -> StatementTooComplex:
    """The 54001 error, with how deep ``text`` nests its parentheses."""
    depth, position = nesting(text) if text is not None else (0, None)
    return StatementTooComplex(
        "statement too deeply nested",
        position=position,
        detail=f"{depth} levels of parentheses" if depth else None,
        hint="Flatten the expression or the subqueries (fsql parses about 40 levels of nesting).",
    )


def nesting(text: str) -> tuple[int, int | None]:
    """The deepest nesting of parentheses in ``text`` (quotes and comments
    skipped) and the 1-based position of the first parenthesis at that
    depth."""
    depth = deepest = 0
    at: int | None = None
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            close = text.find(c, i + 1)
            i = n if close < 0 else close + 1
            continue
        if text.startswith("--", i):
            close = text.find("\n", i)
            i = n if close < 0 else close + 1
            continue
        if text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
            continue
        if c == "(":
            depth += 1
            if depth > deepest:
                deepest, at = depth, i + 1
        elif c == ")":
            depth = max(depth - 1, 0)
        i += 1
    return deepest, at


def _shorten(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...{text[-10:]}"
