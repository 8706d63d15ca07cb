"""Helpers over sqlglot expression trees that several layers share."""

from __future__ import annotations

from sqlglot import exp


def conjuncts(node: exp.Expr) -> list[exp.Expr]:
    """The terms of a condition joined by AND, parentheses looked through:
    ``a = 1 AND (b = 2 AND c = 3)`` gives the three comparisons.

    >>> from sqlglot import parse_one
    >>> [c.sql() for c in conjuncts(parse_one("a = 1 AND (b = 2 AND c < 3)"))]
    ['a = 1', 'b = 2', 'c < 3']
    """
    if isinstance(node, exp.Paren):
        return conjuncts(node.this)
    if isinstance(node, exp.And):
        return conjuncts(node.left) + conjuncts(node.right)
    return [node]
