"""Statistics of a training dataset, per split and for the whole dataset,
computed in the engine (ClickHouse SQL over the Arrow rows).

Per column: ``count`` (rows), ``nulls``, ``distinct`` (an estimate:
ClickHouse ``uniqCombined``), and by type ``min``/``max``/``mean``/``stddev``
(numbers; NaN and infinities are left out of these), ``histogram`` (numbers:
equal-width bins over the whole dataset's range, the same edges for every
split), and ``label_balance`` for label columns (count and fraction per
value, the 50 most frequent).

The whole dataset is the split ``*``.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from fsql.connectors.engine import Engine, input_ref

ALL = "*"
SPLIT_COLUMN = "__fsql_split"
HISTOGRAM_BINS = 10
LABEL_VALUES = 50
DIALECT = "clickhouse"


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _col(name: str) -> exp.Column:
    return exp.Column(this=_ident(name))


def _as(expression: exp.Expr, name: str) -> exp.Expr:
    return exp.alias_(expression, name, quoted=True)


def _kind(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "time"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_null(t):
        return "null"
    return "other"


def _json(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, bool | int | str):
        return v
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, datetime | date | time):
        return v.isoformat(sep=" ") if isinstance(v, datetime) else v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def _aggregates(name: str, t: pa.DataType, i: int) -> list[exp.Expr]:
    c = _col(name)
    kind = _kind(t)
    out: list[exp.Expr] = [
        _as(exp.func("countIf", exp.Is(this=c.copy(), expression=exp.Null())), f"a{i}_nulls"),
    ]
    if kind == "null":
        return out
    if kind != "other" or pa.types.is_list(t) or pa.types.is_binary(t):
        out.append(_as(exp.func("uniqCombined", c.copy()), f"a{i}_distinct"))
    if kind == "number":
        x: exp.Expr = c.copy()
        if pa.types.is_floating(t):
            x = exp.func("if", exp.func("isFinite", c.copy()), c.copy(), exp.Null())
        elif pa.types.is_decimal(t):
            x = exp.func("toFloat64", c.copy())
        out += [
            _as(exp.func("min", x.copy()), f"a{i}_min"),
            _as(exp.func("max", x.copy()), f"a{i}_max"),
            _as(exp.func("avg", x.copy()), f"a{i}_mean"),
            _as(exp.func("stddevSamp", x.copy()), f"a{i}_stddev"),
        ]
    elif kind == "bool":
        as_int = exp.func("toUInt8", c.copy())
        out.append(_as(exp.func("avg", as_int), f"a{i}_mean"))
    elif kind in ("time", "text"):
        out += [
            _as(exp.func("min", c.copy()), f"a{i}_min"),
            _as(exp.func("max", c.copy()), f"a{i}_max"),
        ]
    return out


def _by_split_and_total(split: exp.Column, *more: exp.Expr) -> exp.Group:
    """``GROUP BY GROUPING SETS ((split, more...), (more...))``: every split
    and the whole dataset in one scan."""
    return exp.Group(
        expressions=[
            exp.GroupingSets(
                expressions=[
                    exp.Tuple(expressions=[split.copy(), *[m.copy() for m in more]]),
                    exp.Tuple(expressions=[m.copy() for m in more]),
                ]
            )
        ]
    )


def _whole_flag(split: exp.Column) -> exp.Expr:
    return _as(exp.func("grouping", split.copy()), WHOLE)


WHOLE = "__fsql_whole"


def compute(
    engine: Engine,
    parts: dict[str, pa.Table],
    *,
    labels: list[str] | None = None,
    bins: int = HISTOGRAM_BINS,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{split: {column: {stat: value}}}``, with split ``*`` for the whole.

    Three scans of the rows at most: the aggregates, the histograms (their
    edges come from the first) and the label balance."""
    names = list(parts)
    if not names:
        return {}
    schema = next(iter(parts.values())).schema
    tables = [
        t.append_column(SPLIT_COLUMN, pa.repeat(pa.scalar(s, pa.string()), t.num_rows))
        for s, t in parts.items()
    ]
    data = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    split = _col(SPLIT_COLUMN)
    aggs: list[exp.Expr] = [_as(exp.func("count"), "rows")]
    for i, f in enumerate(schema):
        aggs += _aggregates(f.name, f.type, i)
    q = exp.select(split.copy(), _whole_flag(split), *aggs).from_(input_ref(0))
    q.set("group", _by_split_and_total(split))
    rows: dict[str, dict[str, Any]] = {s: {} for s in names}
    for r in engine.query(q.sql(DIALECT), [data]).to_pylist():
        name = ALL if r.pop(WHOLE) else r[SPLIT_COLUMN]
        r.pop(SPLIT_COLUMN)
        rows[name] = r
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for s in [*names, ALL]:
        r = rows.get(s) or {}
        n = int(r.get("rows") or 0)
        cols: dict[str, dict[str, Any]] = {}
        for i, f in enumerate(schema):
            stats: dict[str, Any] = {"count": n}
            prefix = f"a{i}_"
            for key, value in r.items():
                if key.startswith(prefix):
                    stats[key[len(prefix) :]] = _json(value)
            if n == 0:
                stats.setdefault("nulls", 0)
            cols[f.name] = stats
        result[s] = cols
    _histograms(engine, data, schema, result, bins)
    for label in labels or []:
        _label_balance(engine, data, label, result)
    return result


def _histograms(
    engine: Engine,
    data: pa.Table,
    schema: pa.Schema,
    result: dict[str, dict[str, dict[str, Any]]],
    bins: int,
) -> None:
    """Equal-width histograms of every number column, in one scan."""
    specs = []
    for f in schema:
        if _kind(f.type) != "number":
            continue
        lo, hi = result[ALL][f.name].get("min"), result[ALL][f.name].get("max")
        if lo is None or hi is None:
            continue
        lo, hi = float(lo), float(hi)
        width = (hi - lo) / bins if hi > lo else 0.0
        specs.append((f.name, lo, hi, width))
    if not specs:
        return
    split = _col(SPLIT_COLUMN)
    aggs: list[exp.Expr] = []
    for i, (name, lo, _hi, width) in enumerate(specs):
        x = exp.func("toFloat64", _col(name))
        finite = exp.func("ifNull", exp.func("isFinite", x.copy()), exp.Literal.number(0))
        safe = exp.func("ifNull", exp.func("if", finite.copy(), x.copy(), _number(lo)), _number(lo))
        if width > 0:
            offset = exp.Paren(this=exp.Sub(this=safe, expression=_number(lo)))
            bucket: exp.Expr = exp.func(
                "least",
                exp.func(
                    "toUInt32",
                    exp.func("floor", exp.Div(this=offset, expression=_number(width))),
                ),
                exp.Literal.number(bins - 1),
            )
        else:
            bucket = exp.func("toUInt32", exp.Literal.number(0))
        one = exp.func("toUInt64", exp.Literal.number(1))
        aggs.append(
            _as(
                exp.func(
                    "sumMapIf",
                    exp.Array(expressions=[bucket]),
                    exp.Array(expressions=[one]),
                    finite,
                ),
                f"h{i}",
            )
        )
    q = exp.select(split.copy(), _whole_flag(split), *aggs).from_(input_ref(0))
    q.set("group", _by_split_and_total(split))
    found = engine.query(q.sql(DIALECT), [data]).to_pylist()
    for i, (name, lo, hi, width) in enumerate(specs):
        n_bins = bins if width > 0 else 1
        edges = [lo + k * width for k in range(n_bins)] + [hi]
        for s in result:
            result[s][name]["histogram"] = {"edges": edges, "counts": [0] * n_bins}
        for r in found:
            s = ALL if r[WHOLE] else r[SPLIT_COLUMN]
            counts = np.zeros(n_bins, dtype=np.int64)
            keys, values = _map_items(r[f"h{i}"])
            for k, v in zip(keys, values, strict=True):
                counts[int(k)] += int(v)
            result[s][name]["histogram"]["counts"] = counts.tolist()


def _map_items(value: Any) -> tuple[list[Any], list[Any]]:
    """sumMap's (keys, values) tuple as Arrow gives it back."""
    if isinstance(value, dict):
        items = list(value.values())
        return list(items[0] or []), list(items[1] or [])
    if isinstance(value, list | tuple) and len(value) == 2:
        return list(value[0] or []), list(value[1] or [])
    return [], []


def _number(v: float) -> exp.Expr:
    return exp.Literal.number(repr(float(v)))


def _label_balance(
    engine: Engine, data: pa.Table, label: str, result: dict[str, dict[str, dict[str, Any]]]
) -> None:
    split = _col(SPLIT_COLUMN)
    value = _col(label)
    q = exp.select(
        split.copy(),
        _whole_flag(split),
        _as(value.copy(), "v"),
        _as(exp.func("count"), "n"),
    ).from_(input_ref(0))
    q.set("group", _by_split_and_total(split, value))
    per: dict[str, dict[Any, int]] = {s: {} for s in result}
    for r in engine.query(q.sql(DIALECT), [data]).to_pylist():
        s = ALL if r[WHOLE] else r[SPLIT_COLUMN]
        key = _json(r["v"])
        per[s][key] = per[s].get(key, 0) + int(r["n"])
    for s, values in per.items():
        total = sum(values.values())
        top = sorted(values.items(), key=lambda kv: (-kv[1], str(kv[0])))[:LABEL_VALUES]
        result[s][label]["label_balance"] = [
            {"value": v, "count": n, "fraction": n / total if total else 0.0} for v, n in top
        ]
