"""Constant time expressions (``AS OF TIMESTAMP '...'``, ``FOR SYSTEM_TIME
AS OF now() - INTERVAL '1 day'``) evaluated to microseconds since the epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from fsql.bind.confine import check_functions
from fsql.errors import FeatureNotSupported, FsqlError, InvalidParameter, position_of
from fsql.store.offline import DIALECT

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


def evaluate_time(store: StoreCore, node: exp.Expr) -> int:
    """Evaluate a constant time expression (``TIMESTAMP '...'``, ``now() -
    interval '1 day'``) to microseconds since the epoch, UTC."""
    if isinstance(node, exp.Literal) and not node.is_string:
        raise InvalidParameter(
            f"{node.sql()} is not a timestamp", sqlstate="22007", position=position_of(node)
        )
    # a constant: no relation, nothing of the engine's own
    check_functions(node)
    if next(node.find_all(exp.Table, exp.Select), None) is not None:
        raise FeatureNotSupported(
            "a subquery in a time expression is not supported", position=position_of(node)
        )
    expr = exp.func(
        "toUnixTimestamp64Micro",
        exp.cast(node.copy(), exp.DataType.build("DateTime64(6, 'UTC')", dialect=DIALECT)),
    )
    try:
        table = store.engine.query(exp.select(exp.alias_(expr, "us")).sql(DIALECT))
    except FsqlError as e:
        raise InvalidParameter(
            f"{node.sql(dialect='postgres')} is not a timestamp: {e.message}",
            sqlstate="22007",
            position=position_of(node),
        ) from None
    value = table.column(0)[0].as_py()
    if value is None:
        raise InvalidParameter(
            f"{node.sql(dialect='postgres')} is NULL; expected a timestamp", sqlstate="22004"
        )
    return int(value)
