"""``store.get_features(...)``: the Python form of SELECT FEATURES."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

from fsql.errors import InvalidParameter
from fsql.params import literal
from fsql.plan.features import execute_plan, plan_features
from fsql.sql.dialect import FSQL
from fsql.sql.nodes import SelectFeatures
from fsql.timeutil import to_micros

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


def feature_ref(name: str) -> exp.Column:
    parts = name.split(".")
    if len(parts) > 2 or not all(parts):
        raise InvalidParameter(
            f"{name!r} is not a feature name", hint="Use feature, fg.feature or fg.*."
        )
    this: exp.Expr = exp.Star() if parts[-1] == "*" else exp.to_identifier(parts[-1])
    table = exp.to_identifier(parts[0]) if len(parts) == 2 else None
    return exp.Column(this=this, table=table)


def get_features(
    store: StoreCore,
    features: Sequence[str],
    *,
    spine: Any = None,
    as_of: Any = None,
    system_time: Any = None,
    where: str | None = None,
) -> pa.Table:
    if isinstance(features, str):
        features = [features]
    node = SelectFeatures(expressions=[feature_ref(f) for f in features])
    if spine is not None:
        if not isinstance(as_of, str):
            raise InvalidParameter(
                "with a spine, as_of names the spine's time column", hint="as_of='event_ts'"
            )
        node.set("as_of", exp.column(as_of))
    elif as_of is not None:
        node.set("as_of", literal(as_of))
    if where:
        node.set("where", exp.Where(this=sqlglot.parse_one(where, dialect=FSQL)))
    st = to_micros(system_time) if system_time is not None else None
    plan = plan_features(store, node, system_time_us=st, spine=spine)
    return execute_plan(store, plan)
