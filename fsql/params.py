"""Bind ``$1, $2, ...`` parameters as literal nodes in a parsed statement.

Values become sqlglot literals (strings quoted by the generator), never text
spliced into SQL.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from fsql.errors import InvalidParameter


def literal(value: Any) -> exp.Expr:
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float, decimal.Decimal)):
        if isinstance(value, float) and value != value:  # NaN
            return exp.cast(exp.Literal.string("NaN"), exp.DataType.build("double"))
        return exp.Literal.number(value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, dt.datetime):
        kind = "timestamptz" if value.tzinfo else "timestamp"
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.build(kind))
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("date"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        # bytea: the exact bytes, whatever they are (not text decoded lossily)
        return exp.Unhex(this=exp.Literal.string(bytes(value).hex()))
    if isinstance(value, (list, tuple)):
        return exp.Array(expressions=[literal(v) for v in value])
    raise InvalidParameter(f"cannot bind a parameter of type {type(value).__name__}")


def bind(statement: exp.Expr, params: Sequence[Any]) -> exp.Expr:
    def replace(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Parameter) and isinstance(node.this, exp.Literal):
            index = int(node.this.this)
        elif isinstance(node, exp.Placeholder) and str(node.this or "").isdigit():
            index = int(node.this)
        else:
            return node
        if not 1 <= index <= len(params):
            raise InvalidParameter(
                f"there is no parameter ${index}",
                sqlstate="42P02",
                hint=f"{len(params)} parameter(s) were given.",
            )
        return literal(params[index - 1])

    return statement.transform(replace, copy=True)
