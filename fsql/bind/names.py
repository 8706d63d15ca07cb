"""Column names in plain SQL resolve as PostgreSQL resolves them.

ClickHouse picks the first table that has an unqualified column, so ``SELECT
cnt FROM a JOIN b ON ...`` silently reads ``a.cnt`` when both have one, and
reports an unknown column as an engine error without a position. Before the
engine sees a statement, :func:`check_columns` walks its scopes (sqlglot's
``traverse_scope``) with the columns of each feature group it reads:

- an unqualified column that two relations of one scope have is ``42702``
  (unless it is a ``USING`` column), listing the qualified names;
- a column no relation has is ``42703``, when every relation it could come
  from is known (feature groups, CTEs and subqueries with named columns);
  relations whose columns fsql does not know (files, connector tables, table
  functions) make it defer to the engine.

Both carry the position of the column in the statement text.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from fsql.errors import AmbiguousColumn, UndefinedColumn, did_you_mean, position_of

Columns = Collection[str] | None  # None: not known here


def check_columns(statement: exp.Expr, relations: Mapping[str, Collection[str]]) -> None:
    """Raise 42702 / 42703 for ``statement``; ``relations`` maps a table name
    (feature group ``fg`` or ``fg_vN``) to its column names (or a mapping
    keyed by them)."""
    try:
        scopes = traverse_scope(statement)
    except Exception:  # a shape sqlglot's scope walker does not cover: leave it to the engine
        return
    for scope in scopes:
        _check_scope(scope, relations)


def _sources(scope: Scope, relations: Mapping[str, Collection[str]]) -> dict[str, Columns]:
    out: dict[str, Columns] = {}
    for alias, source in scope.sources.items():
        if isinstance(source, exp.Table):
            known = relations.get(source.name) if not source.db and source.name else None
            out[alias] = known
        elif isinstance(source, Scope) and isinstance(source.expression, exp.Query):
            query = source.expression
            if any(isinstance(e, exp.Star) or e.is_star for e in query.selects):
                out[alias] = None
            else:
                names = [n for n in query.named_selects if n]
                out[alias] = frozenset(names) if len(names) == len(query.selects) else None
        else:
            out[alias] = None
    return out


def _using(scope: Scope) -> set[str]:
    names: set[str] = set()
    select = scope.expression
    if isinstance(select, exp.Select):
        for join in select.args.get("joins") or []:
            for u in join.args.get("using") or []:
                names.add(u.name)
    return names


def _select_aliases(scope: Scope) -> set[str]:
    select = scope.expression
    if not isinstance(select, exp.Select):
        return set()
    return {e.alias for e in select.expressions if isinstance(e, exp.Alias)}


def _check_scope(scope: Scope, relations: Mapping[str, Collection[str]]) -> None:
    sources = _sources(scope, relations)
    if not sources:
        return
    using = _using(scope)
    aliases = _select_aliases(scope)
    chain: list[dict[str, Columns]] | None = None  # this scope's sources and its parents'
    for column in scope.columns:
        if isinstance(column.this, exp.Star):
            continue
        if column.find_ancestor(exp.Select) is not scope.expression:
            continue  # a subquery's column the walker lists for correlation
        name = column.name
        if column.table:
            cols = sources.get(column.table)
            if column.table in sources and cols is not None and name not in cols:
                raise UndefinedColumn(
                    f"column {column.table}.{name} does not exist",
                    position=position_of(column),
                    hint=did_you_mean(name, sorted(cols)),
                )
            continue
        owners = sorted(a for a, cols in sources.items() if cols is not None and name in cols)
        if len(owners) > 1 and name not in using:
            raise AmbiguousColumn(
                f'column reference "{name}" is ambiguous',
                position=position_of(column),
                hint="It is in " + ", ".join(f"{a}.{name}" for a in owners) + ": qualify it.",
            )
        if owners or name in aliases or name in using:
            continue
        if chain is None:
            chain = [sources, *(_sources(p, relations) for p in _parents(scope))]
        if _maybe_elsewhere(name, chain):
            continue
        known = sorted({c for cols in sources.values() if cols is not None for c in cols})
        raise UndefinedColumn(
            f'column "{name}" does not exist',
            position=position_of(column),
            hint=did_you_mean(name, known),
        )


def _parents(scope: Scope) -> list[Scope]:
    out = []
    while scope.parent is not None:
        scope = scope.parent
        out.append(scope)
    return out


def _maybe_elsewhere(name: str, chain: list[dict[str, Columns]]) -> bool:
    """True unless every relation of a scope and the scopes around it
    (``chain``) is known and none has ``name`` (a correlated subquery may read
    an outer column; an unknown relation may hold it)."""
    return any(cols is None or name in cols for sources in chain for cols in sources.values())


INT_DIV = "fsql_integer_division"  # meta flag the engine generator reads
_INTEGERS = (exp.DType.TINYINT, exp.DType.SMALLINT, exp.DType.INT, exp.DType.BIGINT)


def mark_integer_division(statement: exp.Expr, types: Mapping[str, Mapping[str, str]]) -> None:
    """PostgreSQL divides integers as integers (``7 / 2`` is 3, ``1 / 0`` an
    error), ClickHouse as floats. Mark each ``/`` whose operands are both
    integers, typed on a copy with the feature groups' column ``types``
    (table -> column -> PostgreSQL type), for the generator to emit
    ``intDiv``. In place; unknown types leave a division as it is."""
    divisions = list(statement.find_all(exp.Div))
    if not divisions:
        return
    from sqlglot.optimizer.annotate_types import annotate_types
    from sqlglot.optimizer.qualify_columns import qualify_columns

    schema: dict[str, object] = {t: dict(cols) for t, cols in types.items()}
    typed = statement.copy()
    try:
        qualify_columns(typed, schema=schema, expand_stars=False)
        annotate_types(typed, schema=schema, dialect="postgres")
    except Exception:  # a shape the optimizer does not cover: float division stays
        return
    copies = list(typed.find_all(exp.Div))
    if len(copies) != len(divisions):
        return
    for node, copy in zip(divisions, copies, strict=True):
        left, right = copy.this.type, copy.expression.type
        if (
            left is not None
            and right is not None
            and left.is_type(*_INTEGERS)
            and right.is_type(*_INTEGERS)
        ):
            node.meta[INT_DIV] = True
