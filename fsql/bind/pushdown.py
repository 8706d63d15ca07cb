"""Filter pushdown into on-demand sources, and what EXPLAIN shows of them.

ClickHouse sends a WHERE to the source only when it sits directly on the
table function, not when it is outside a subquery. :func:`push_down` copies
simple conjuncts over an on-demand relation (comparisons, IN lists, IS NULL,
BETWEEN on plain source columns) into the query next to the table function;
the original conjunct stays where it was, so the result cannot change.
:func:`explain_sources` shows, per on-demand relation, the query the source
receives.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
from sqlglot import exp

from fsql.bind.on_demand import binding_of
from fsql.sql.trees import conjuncts


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


# filter pushdown -------------------------------------------------------------------


_SIMPLE_PREDICATES = (
    exp.EQ,
    exp.NEQ,
    exp.LT,
    exp.LTE,
    exp.GT,
    exp.GTE,
    exp.In,
    exp.Is,
    exp.Between,
)
_FORBIDDEN_INSIDE = (exp.Subquery, exp.Select, exp.AggFunc, exp.Window, exp.Placeholder)


def push_down(statement: exp.Expr) -> exp.Expr:
    """Copy simple filters over on-demand relations next to their table
    functions, so the engine sends them to the source. In place; returns
    ``statement``."""
    _spine_bounds(statement)
    for sub in list(statement.find_all(exp.Subquery)):
        outer = sub.this
        if not isinstance(outer, exp.Select) or binding_of(outer) is None:
            continue
        if binding_of(outer).mode != "pushdown":  # type: ignore[union-attr]
            continue
        holder = sub.parent
        if not isinstance(holder, (exp.From, exp.Join)):
            continue
        parent = holder.parent
        if not isinstance(parent, exp.Select) or not parent.args.get("where"):
            continue
        single = not parent.args.get("joins")
        alias = sub.alias_or_name
        targets = _pushable_columns(outer)
        if not targets:
            continue
        for conjunct in conjuncts(parent.args["where"].this):
            moved = _rewrite(conjunct, alias, single, targets)
            if moved is not None:
                inner = targets["__select__"]
                assert isinstance(inner, exp.Select)
                inner.where(moved, copy=False)
    return statement


SCALAR = "fsql_scalar"


def _od_relation(node: exp.Expr) -> bool:
    """``node`` is a select straight over a pushed-down on-demand relation."""
    if not isinstance(node, exp.Select):
        return False
    from_ = node.args.get("from_")
    if from_ is None or not isinstance(from_.this, exp.Subquery) or node.args.get("joins"):
        return False
    b = binding_of(from_.this.this)
    return b is not None and b.mode == "pushdown"


def _spine_bounds(statement: exp.Expr) -> None:
    """A point-in-time join only needs source rows with a key inside the
    spine's key range and an event time at or before the spine's latest
    time: add those bounds (as scalar subqueries over the spine, which the
    engine computes first) to the on-demand side of the join."""
    for join in list(statement.find_all(exp.Join)):
        right = join.this
        on = join.args.get("on")
        select = join.parent
        if on is None or not isinstance(right, exp.Subquery) or not _od_relation(right.this):
            continue
        if not isinstance(select, exp.Select) or select.args.get("from_") is None:
            continue
        spine = select.args["from_"].this
        if not isinstance(spine, exp.Subquery) or not spine.alias_or_name:
            continue
        if any(binding_of(n) is not None for n in spine.find_all(exp.Select)):
            continue  # the spine reads a source itself: do not read it twice more
        s_alias, g_alias = spine.alias_or_name, right.alias_or_name
        rel = right.this
        assert isinstance(rel, exp.Select)
        for conj in conjuncts(on):
            if not isinstance(conj, exp.EQ | exp.GTE | exp.LTE):
                continue
            a, b = conj.this, conj.expression
            if not (isinstance(a, exp.Column) and isinstance(b, exp.Column)):
                continue
            if a.table == g_alias and b.table == s_alias:
                a, b = b, a
                kind = {exp.EQ: "eq", exp.GTE: "le", exp.LTE: "ge"}[type(conj)]
            elif a.table == s_alias and b.table == g_alias:
                kind = {exp.EQ: "eq", exp.GTE: "ge", exp.LTE: "le"}[type(conj)]
            else:
                continue
            # a: spine column, b: group column; kind: spine (op) group
            target = exp.column(_ident(b.name))
            if kind in ("eq", "ge"):  # group <= max(spine)
                rel.where(
                    exp.LTE(this=target, expression=_scalar(spine, "max", a.name)), copy=False
                )
            if kind in ("eq", "le"):  # group >= min(spine)
                rel.where(
                    exp.GTE(this=target.copy(), expression=_scalar(spine, "min", a.name)),
                    copy=False,
                )


def _scalar(spine: exp.Subquery, fn: str, column: str) -> exp.Subquery:
    body = spine.this.copy()
    q = exp.select(exp.func(fn, exp.column(_ident(column)))).from_(
        exp.Subquery(this=body, alias=exp.TableAlias(this=_ident("fsql_bounds")))
    )
    sub = exp.Subquery(this=q)
    sub.meta[SCALAR] = True
    return sub


def _pushable_columns(outer: exp.Select) -> dict[str, exp.Expression]:
    """FG column -> the source column it plainly is, for a query the engine
    sends filters from (one table function, no grouping, limits or windows)."""
    from_ = outer.args.get("from_")
    if from_ is None or not isinstance(from_.this, exp.Subquery):
        return {}
    inner = from_.this.this
    if not isinstance(inner, exp.Select):
        return {}
    if any(
        inner.args.get(k)
        for k in ("joins", "group", "having", "limit", "distinct", "qualify", "offset", "with")
    ):
        return {}
    if any(True for _ in inner.find_all(exp.Window, exp.AggFunc)):
        return {}
    table = inner.args.get("from_")
    if (
        table is None
        or not isinstance(table.this, exp.Table)
        or not isinstance(table.this.this, exp.Anonymous)
    ):
        return {}
    out: dict[str, exp.Expression] = {"__select__": inner}
    for proj in inner.expressions:
        if isinstance(proj, exp.Star):
            return {}
        expr = proj.this if isinstance(proj, exp.Alias) else proj
        if isinstance(expr, exp.Column) and not isinstance(expr.this, exp.Star):
            out[proj.alias_or_name] = exp.column(_ident(expr.name))
    return out


def _rewrite(
    conjunct: exp.Expr, alias: str, single: bool, targets: Mapping[str, exp.Expression]
) -> exp.Expr | None:
    if not isinstance(conjunct, _SIMPLE_PREDICATES):
        return None
    scalars = [n for n in conjunct.find_all(exp.Subquery) if n.meta.get(SCALAR)]
    inside = {id(x) for sc in scalars for x in sc.walk()}
    if any(id(n) not in inside for n in conjunct.find_all(*_FORBIDDEN_INSIDE)):
        return None
    columns = [c for c in conjunct.find_all(exp.Column) if id(c) not in inside]
    if not columns:
        return None
    for c in columns:
        if c.table and c.table != alias:
            return None
        if not c.table and not single:
            return None
        if c.name not in targets or c.name == "__select__":
            return None
    moved = conjunct.copy()
    moved_scalars = [n for n in moved.find_all(exp.Subquery) if n.meta.get(SCALAR)]
    skip = {id(x) for sc in moved_scalars for x in sc.walk()}
    for c in [c for c in moved.find_all(exp.Column) if id(c) not in skip]:
        c.replace(targets[c.name].copy())
    return moved


# explain ---------------------------------------------------------------------------------


def explain_sources(statement: exp.Expr) -> list[dict[str, str]]:
    """Per on-demand relation in a bound (and pushed-down) statement: the
    feature group, connector, mode and the query the source receives, in the
    source's dialect. No secrets: the password is a placeholder."""
    out = []
    for sel in statement.find_all(exp.Select):
        b = binding_of(sel)
        if b is None:
            continue
        from_ = sel.args.get("from_")
        inner = (
            from_.this.this if from_ is not None and isinstance(from_.this, exp.Subquery) else None
        )
        text = ""
        if isinstance(inner, exp.Query):
            shown = inner.copy()
            for sc in [n for n in shown.find_all(exp.Subquery) if n.meta.get(SCALAR)]:
                # computed by the engine first; the source receives a constant
                agg = sc.this.expressions[0]
                sc.replace(exp.var(f"<{agg.key} of spine {agg.this.name}>"))
            for t in list(shown.find_all(exp.Table)):
                if isinstance(t.this, exp.Anonymous) and t.this.meta.get("fsql_source_table"):
                    original = t.this.meta["fsql_source_table"].copy()
                    if t.alias and t.alias != original.name:
                        original.set("alias", exp.TableAlias(this=_ident(t.alias)))
                    t.replace(original)
            text = shown.sql(b.dialect, identify=True)
        if b.mode == "fetch":
            text = b.source_query
        out.append(
            {
                "feature_group": b.fg,
                "connector": b.connector,
                "type": b.connector_type,
                "mode": b.mode,
                "source_query": text,
            }
        )
    return out


def explain_table(statement: exp.Expr) -> pa.Table:
    rows = explain_sources(statement)
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                (k, pa.string())
                for k in ("feature_group", "connector", "type", "mode", "source_query")
            ]
        ),
    )


def source_lines(statement: exp.Expr) -> list[str]:
    """EXPLAIN lines: the query each on-demand source receives."""
    return [
        f"-- on-demand {s['feature_group']} via connector {s['connector']} ({s['type']}, "
        f"{s['mode']}): {s['source_query']}"
        for s in explain_sources(statement)
    ]
