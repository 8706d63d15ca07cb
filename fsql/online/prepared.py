"""Key-lookup statements planned once: ``SELECT FEATURES a, b WHERE k = $1``
(or ``= 42``, ``IN ($1, $2)``) is parsed and planned the first time its text
is seen; later runs of the same text bind the parameters straight into a key
table and read the online store, with no parsing, planning or ClickHouse.

The cache is keyed by statement text and emptied whenever the catalog's
feature groups change (the same trigger as the vector plans). Anything that
is not a pure lookup of online groups is remembered as such and left to the
normal executor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from fsql.catalog import FeatureGroup

if TYPE_CHECKING:
    from fsql.online.service import OnlineService

NOT_A_LOOKUP = object()
MAX_STATEMENTS = 10_000


@dataclass
class LookupTemplate:
    features: list[Any]  # FeatureRef from the planner
    groups: list[FeatureGroup]
    key_columns: list[str]
    key_types: list[pa.DataType]
    # per key column: its values, each ("param", index) or ("const", value)
    values: list[list[tuple[str, Any]]]


@dataclass
class LookupPlan:
    """What :meth:`OnlineService.online_lookup` reads of a planner plan."""

    features: list[Any]
    groups: list[FeatureGroup]
    key_columns: list[str]
    lookup_keys: pa.Table
    spine: None = None
    as_of_us: None = None
    system_time_us: None = None
    limit: None = None
    join_keys: dict[int, list[str]] = field(default_factory=dict)


def _value(node: exp.Expression) -> tuple[str, Any] | None:
    if isinstance(node, exp.Parameter) and isinstance(node.this, exp.Literal):
        return ("param", int(node.this.this))
    if isinstance(node, exp.Placeholder) and str(node.this or "").isdigit():
        return ("param", int(node.this))
    if isinstance(node, exp.Literal):
        if node.is_string:
            return ("const", node.this)
        text = node.this
        try:
            return ("const", int(text))
        except ValueError:
            return None
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        inner = _value(node.this)
        return ("const", -inner[1]) if inner and inner[0] == "const" else None
    return None


def analyze(service: OnlineService, text: str) -> LookupTemplate | object:
    from fsql.plan.features import plan_features
    from fsql.sql.dialect import parse
    from fsql.sql.nodes import SelectFeatures

    try:
        statements = parse(text)
    except Exception:
        return NOT_A_LOOKUP  # the normal path reports the syntax error
    if len(statements) != 1 or not isinstance(statements[0], SelectFeatures):
        return NOT_A_LOOKUP
    node = statements[0]
    for arg in ("spine", "as_of", "system_time", "order", "limit", "offset"):
        if node.args.get(arg) is not None:
            return NOT_A_LOOKUP
    where = node.args.get("where")
    if where is None:
        return NOT_A_LOOKUP
    conds = list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
    found: dict[str, list[tuple[str, Any]]] = {}
    for cond in conds:
        if isinstance(cond, exp.Paren):
            cond = cond.this
        if isinstance(cond, exp.EQ) and isinstance(cond.this, exp.Column):
            target, nodes = cond.this.name, [cond.expression]
        elif (
            isinstance(cond, exp.In)
            and isinstance(cond.this, exp.Column)
            and not cond.args.get("query")
        ):
            target, nodes = cond.this.name, list(cond.expressions)
        else:
            return NOT_A_LOOKUP
        if target in found or cond.this.table:
            return NOT_A_LOOKUP
        values = [_value(n) for n in nodes]
        if any(v is None for v in values):
            return NOT_A_LOOKUP
        found[target] = values  # type: ignore[assignment]
    try:
        plan = plan_features(service.store, node)
    except Exception:
        return NOT_A_LOOKUP  # the normal path reports it
    if plan.spine is not None or plan.as_of_us is not None or plan.system_time_us is not None:
        return NOT_A_LOOKUP
    keys = list(plan.key_columns)
    if set(found) != set(keys) or (len(keys) > 1 and any(len(found[k]) != 1 for k in keys)):
        return NOT_A_LOOKUP
    if any(f.fg is None for f in plan.features):
        return NOT_A_LOOKUP
    if any(g.kind != "cached" or not g.online for g in plan.groups):
        return NOT_A_LOOKUP
    first = plan.groups[0]
    return LookupTemplate(
        features=list(plan.features),
        groups=list(plan.groups),
        key_columns=keys,
        key_types=[first.feature(k).ftype.arrow for k in keys],  # type: ignore[union-attr]
        values=[found[k] for k in keys],
    )


def lookup_template(service: OnlineService, text: str) -> LookupTemplate | None:
    """The cached template of ``text`` (analyzed the first time it is seen);
    None when it is not a key lookup of online groups."""
    cache = service._statements
    entry = cache.get(text)
    if entry is None:
        if len(text) > 4096 or "FEATURES" not in text.upper():
            return None
        entry = analyze(service, text)
        if len(cache) >= MAX_STATEMENTS:
            cache.clear()
        cache[text] = entry
    return entry if isinstance(entry, LookupTemplate) else None


def run(service: OnlineService, text: str, params: Sequence[Any] | None) -> pa.Table | None:
    entry = lookup_template(service, text)
    if entry is None:
        return None
    params = params or ()
    arrays = []
    for values, dtype in zip(entry.values, entry.key_types, strict=True):
        column = []
        for kind, v in values:
            if kind == "param":
                if not 1 <= v <= len(params):
                    return None  # the normal path raises the error
                v = params[v - 1]
            if v is None:
                return None  # `k = NULL` matches nothing: the normal path says so
            column.append(v)
        try:
            arrays.append(pa.array(column, type=dtype))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
            try:  # e.g. text parameters from the Postgres wire
                arrays.append(pa.array(column).cast(dtype))
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                return None
    keys = pa.Table.from_arrays(arrays, names=entry.key_columns)
    plan = LookupPlan(
        features=entry.features,
        groups=entry.groups,
        key_columns=entry.key_columns,
        lookup_keys=keys,
    )
    return service.online_lookup(plan)
