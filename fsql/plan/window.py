"""The point-in-time join in window-function form, for engines without ASOF
JOIN (Trino), and the federated execution mode that runs it on Trino.

For each spine row and each feature group: the candidate rows are the
group's rows with equal key and event time <= the spine time; the one with
the greatest event time wins (``ROW_NUMBER() OVER (PARTITION BY spine row
ORDER BY event time DESC) = 1``); a spine row without candidates gets NULLs.
Every spine row yields exactly one output row, duplicates included::

    WITH "__spine" AS (SELECT *, ROW_NUMBER() OVER () AS "__fsql_row" FROM spine),
         "g0" AS (SELECT "__spine"."__fsql_row", f."amount",
                         ROW_NUMBER() OVER (PARTITION BY "__spine"."__fsql_row"
                                            ORDER BY f."event_ts" DESC) AS "__fsql_rank"
                  FROM "__spine" JOIN (fg rows) AS f
                    ON "__spine"."customer_id" = f."customer_id"
                   AND f."event_ts" <= "__spine"."ts")
    SELECT "__spine".*, "g0"."amount" FROM "__spine"
    LEFT JOIN "g0" ON "g0"."__fsql_row" = "__spine"."__fsql_row" AND "g0"."__fsql_rank" = 1
    ORDER BY "__spine"."__fsql_row"

The tree is built once with sqlglot and printed for any dialect:
``window_sql(plan).sql("trino")`` for Trino, ``"clickhouse"`` for chDB (the
tests run it there against a brute-force oracle). The input is
:class:`fsql.plan.features.FeaturePlan`; how each feature group's rows are reached is
a callback, so the same form serves the embedded engine (the offline store's
relations) and Trino (catalog tables of a federated deployment).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from fsql.bind import on_demand
from fsql.catalog import FeatureGroup
from fsql.errors import FeatureNotSupported, InvalidParameter
from fsql.plan.features import FeaturePlan, plan_features
from fsql.sql.dialect import parse
from fsql.sql.nodes import SelectFeatures
from fsql.store.offline import COMMIT_ID, COMMIT_TIME, database_name

if TYPE_CHECKING:
    from fsql.store.core import StoreCore

ROW = "__fsql_row"
RANK = "__fsql_rank"
SPINE = "__spine"
TIME = "__fsql_time"

Relation = Callable[[FeatureGroup, list[str]], exp.Expression]


def _id(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.Column(this=_id(name), table=_id(table) if table else None)


def _micros_literal(us: int, dialect: str) -> exp.Expr:
    text = (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=us)).isoformat(sep=" ")
    if dialect == "clickhouse":
        return exp.func("toDateTime64", exp.Literal.string(text), exp.Literal.number(6))
    return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMP(6)"))


def offline_relation(plan: FeaturePlan) -> Relation:
    """Feature-group rows as the embedded engine reads them (the offline
    store's relation, at the plan's system time)."""

    def relation(fg: FeatureGroup, names: list[str]) -> exp.Expression:
        src = plan.source.source(fg, system_time_us=plan.system_time_us)
        return exp.select(*[_col(n) for n in names]).from_(src.subquery(_id("src")))

    return relation


def window_sql(
    plan: FeaturePlan,
    *,
    relation: Relation | None = None,
    spine: exp.Expression | None = None,
    dialect: str = "trino",
) -> exp.Select:
    """The plan's point-in-time join as window functions.

    ``relation(fg, columns)`` gives a feature group's rows (default: the
    offline store's relation); ``spine`` replaces the plan's spine relation
    (e.g. inline VALUES for Trino); ``dialect`` only decides how literals of
    time are written and the engine settings the query needs.
    """
    rel = relation or offline_relation(plan)
    spine_rel = spine if spine is not None else plan.spine
    as_of: exp.Expr | None = (
        _micros_literal(plan.as_of_us, dialect) if plan.as_of_us is not None else None
    )
    if spine_rel is None:
        # latest values: the spine is the first group's keys
        first = plan.groups[0]
        keys = list(first.primary_key)
        names = keys + ([first.event_time] if first.event_time else [])
        base = exp.select(*[_col(n) for n in names]).from_(
            rel(first, names).subquery(_id("k"))  # type: ignore[attr-defined]
        )
        if as_of is not None and first.event_time:
            base = base.where(exp.LTE(this=_col(first.event_time), expression=as_of.copy()))
        spine_rel = exp.select(*[_col(k) for k in keys]).from_(base.subquery(_id("k2"))).distinct()
        spine_columns = keys
        spine_time = None
        out_spine = keys
    else:
        spine_columns = list(plan.spine_columns)
        spine_time = plan.spine_time
        out_spine = [c for c in spine_columns if c != ROW]
    spine_select: list[exp.Expr] = [_col(c) for c in spine_columns]
    if ROW not in spine_columns:
        spine_select.append(
            exp.alias_(exp.Window(this=exp.RowNumber()), _id(ROW))  # OVER ()
        )
    if spine_time is not None:
        spine_select.append(exp.alias_(_col(spine_time), _id(TIME)))
    elif as_of is not None:
        spine_select.append(exp.alias_(as_of.copy(), _id(TIME)))
    has_time = spine_time is not None or as_of is not None
    if isinstance(spine_rel, exp.Query):
        spine_from: exp.Expr = spine_rel.subquery(_id("s"))
    else:
        spine_from = spine_rel.copy()
        alias = spine_from.args.get("alias")
        if isinstance(alias, exp.TableAlias):
            alias.set("this", _id("s"))  # keep VALUES column names
        elif isinstance(spine_from, exp.Table | exp.Subquery):
            spine_from.set("alias", exp.TableAlias(this=_id("s")))
        else:
            spine_from = exp.Table(this=spine_from, alias=exp.TableAlias(this=_id("s")))
    q = exp.select(*spine_select).from_(spine_from)
    ctes: list[tuple[str, exp.Expression]] = [(SPINE, q)]
    outer = exp.select().from_(exp.Table(this=_id(SPINE)))
    for i, fg in enumerate(plan.groups):
        alias = f"g{i}"
        keys = list(plan.join_keys.get(fg.id, fg.primary_key))
        feats = [
            f.feature
            for f in plan.features
            if f.fg is not None and f.fg.id == fg.id and f.feature not in keys
        ]
        feats = list(dict.fromkeys(feats))
        names = list(dict.fromkeys(keys + feats + ([fg.event_time] if fg.event_time else [])))
        f_rel = rel(fg, names)
        conds: list[exp.Expr] = [exp.EQ(this=_col(k, SPINE), expression=_col(k, "f")) for k in keys]
        if fg.event_time and has_time:
            conds.append(exp.LTE(this=_col(fg.event_time, "f"), expression=_col(TIME, SPINE)))
        order = (
            [exp.Ordered(this=_col(fg.event_time, "f"), desc=True)]
            if fg.event_time
            else [exp.Ordered(this=exp.Literal.number(1))]
        )
        rank = exp.Window(
            this=exp.RowNumber(),
            partition_by=[_col(ROW, SPINE)],
            order=exp.Order(expressions=order),
        )
        cand = (
            exp.select(
                exp.alias_(_col(ROW, SPINE), _id(ROW)),
                *[exp.alias_(_col(n, "f"), _id(n)) for n in feats],
                exp.alias_(rank, _id(RANK)),
            )
            .from_(exp.Table(this=_id(SPINE)))
            .join(
                f_rel.subquery(_id("f")),  # type: ignore[attr-defined]
                on=exp.and_(*conds),
                join_type="INNER",
            )
        )
        ctes.append((alias, cand))
        outer = outer.join(
            exp.Table(this=_id(alias)),
            on=exp.and_(
                exp.EQ(this=_col(ROW, alias), expression=_col(ROW, SPINE)),
                exp.EQ(this=_col(RANK, alias), expression=exp.Literal.number(1)),
            ),
            join_type="LEFT",
        )
    selects: list[exp.Expr] = [exp.alias_(_col(c, SPINE), _id(c)) for c in out_spine]
    for f in plan.features:
        if f.fg is None:
            if f.alias != f.feature:
                selects.append(exp.alias_(_col(f.feature, SPINE), _id(f.alias)))
            continue
        idx = next(i for i, g in enumerate(plan.groups) if g.id == f.fg.id)
        keys = list(plan.join_keys.get(f.fg.id, f.fg.primary_key))
        source = SPINE if f.feature in keys else f"g{idx}"
        if source == SPINE and f.feature in out_spine and f.alias == f.feature:
            continue
        selects.append(exp.alias_(_col(f.feature, source), _id(f.alias)))
    outer = outer.select(*selects)
    outer = outer.order_by(_col(ROW, SPINE))
    for name, body in ctes:
        outer = outer.with_(_id(name), as_=body)
    result = _apply_user_clauses(plan, outer, [_select_name(s) for s in selects])
    if dialect == "clickhouse":
        result.set(
            "settings",
            [exp.EQ(this=exp.var("join_use_nulls"), expression=exp.Literal.number(1))],
        )
    return result


def _select_name(node: exp.Expr) -> str:
    return node.alias_or_name


def _apply_user_clauses(plan: FeaturePlan, q: exp.Select, names: list[str]) -> exp.Select:
    if not (plan.where or plan.order or plan.limit or plan.offset):
        return q
    outer = exp.select(*[_col(n) for n in names]).from_(q.subquery(_id("q")))
    if plan.where is not None:
        cond = plan.where.this.copy()
        for c in list(cond.find_all(exp.Column)):
            c.replace(_col(c.name))
        outer = outer.where(cond)
    if plan.order is not None:
        order = plan.order.copy()
        for c in list(order.find_all(exp.Column)):
            c.replace(_col(c.name))
        outer.set("order", order)
    if plan.limit is not None:
        outer.set("limit", plan.limit.copy())
    if plan.offset is not None:
        outer.set("offset", plan.offset.copy())
    return outer


# federated execution on Trino -------------------------------------------------------


def values_relation(table: pa.Table) -> exp.Expression:
    """An Arrow table as inline ``VALUES`` with typed literals (a spine
    handed from Python, sent to an engine that cannot read our memory)."""
    if table.num_rows == 0:
        raise InvalidParameter("the spine has no rows")
    rows = []
    types = [exp.DataType.build(_sql_type(f.type)) for f in table.schema]
    for row in table.to_pylist():
        rows.append(
            exp.Tuple(
                expressions=[
                    _typed_literal(row[f.name], t) for f, t in zip(table.schema, types, strict=True)
                ]
            )
        )
    return exp.Values(
        expressions=rows,
        alias=exp.TableAlias(this=_id("v"), columns=[_id(n) for n in table.column_names]),
    )


def _sql_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision}, {t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP(6)"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    raise FeatureNotSupported(f"spine column type {t} cannot be sent to Trino")


def _typed_literal(value: Any, to: exp.DataType) -> exp.Expression:
    if value is None:
        return exp.cast(exp.Null(), to)
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float | Decimal):
        return exp.cast(exp.Literal.number(value), to)
    if isinstance(value, dt.datetime):
        return exp.cast(exp.Literal.string(value.replace(tzinfo=None).isoformat(sep=" ")), to)
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), to)
    return exp.cast(exp.Literal.string(str(value)), to)


def trino_relations(
    store: StoreCore,
    plan: FeaturePlan,
    *,
    offline_catalog: str | None = None,
    catalogs: Mapping[str, str] | None = None,
) -> Relation:
    """How Trino reaches each feature group: on-demand groups over a Trino
    connector run their query; over another connector, their query with
    tables qualified by the Trino catalog ``catalogs[connector]`` names;
    cached groups are read from ``offline_catalog`` (Trino's catalog over
    the ClickHouse offline store, ``fsql_<project>.<fg>_v<N>``)."""

    def relation(fg: FeatureGroup, names: list[str]) -> exp.Expression:
        if fg.kind == "on_demand":
            assert fg.connector and fg.query is not None
            conn = on_demand.open_connector(store.catalog, fg.project, fg.connector)
            query = on_demand.parse_query(fg.query).copy()
            if conn.type_name != "trino":
                target = (catalogs or {}).get(fg.connector)
                if not target:
                    raise FeatureNotSupported(
                        f'feature group "{fg.name}" reads connector "{fg.connector}", which '
                        "Trino does not reach",
                        hint="Name the Trino catalog for it: catalogs={'"
                        + fg.connector
                        + "': 'trino_catalog'}.",
                    )
                schema = conn.options.get("schema") or conn.options.get("database")
                for t in query.find_all(exp.Table):
                    if t.name and not t.catalog:
                        if not t.db and schema:
                            t.set("db", _id(schema))
                        t.set("catalog", _id(target))
            return exp.select(*[_col(n) for n in names]).from_(query.subquery(_id("od")))
        if not offline_catalog:
            raise FeatureNotSupported(
                f'cached feature group "{fg.name}" is in the offline store, which this Trino '
                "federation has no catalog for",
                hint="Pass offline_catalog= (Trino's catalog over the ClickHouse offline store).",
            )

        table = exp.Table(
            this=_id(fg.qualified_name),
            db=_id(database_name(fg.project)),
            catalog=_id(offline_catalog),
        )
        key = list(fg.primary_key) + ([fg.event_time] if fg.event_time else [])
        latest = exp.Window(
            this=exp.RowNumber(),
            partition_by=[_col(k) for k in key],
            order=exp.Order(expressions=[exp.Ordered(this=_col(COMMIT_ID), desc=True)]),
        )
        inner = exp.select(
            *[_col(n) for n in names], exp.alias_(latest, _id("__fsql_latest"))
        ).from_(table)
        if plan.system_time_us is not None:
            inner = inner.where(
                exp.LTE(
                    this=_col(COMMIT_TIME), expression=_micros_literal(plan.system_time_us, "trino")
                )
            )
        return (
            exp.select(*[_col(n) for n in names])
            .from_(inner.subquery(_id("c")))
            .where(exp.EQ(this=_col("__fsql_latest"), expression=exp.Literal.number(1)))
        )

    return relation


def federated_sql(
    store: StoreCore,
    plan: FeaturePlan,
    *,
    offline_catalog: str | None = None,
    catalogs: Mapping[str, str] | None = None,
) -> str:
    """The plan as one Trino statement (window form, spine inline when it
    came from Python)."""
    spine = values_relation(plan.spine_input) if plan.spine_input is not None else None
    if spine is None and plan.spine is not None:
        raise FeatureNotSupported(
            "federated mode takes a spine from Python (a table or DataFrame)",
            hint="store.get_features(..., spine=table) or a Python spine.",
        )
    tree = window_sql(
        plan,
        relation=trino_relations(store, plan, offline_catalog=offline_catalog, catalogs=catalogs),
        spine=spine,
        dialect="trino",
    )
    return tree.sql("trino", identify=True)


def run_federated(
    store: StoreCore,
    text_or_plan: str | FeaturePlan,
    *,
    connector: str,
    spine: Any = None,
    offline_catalog: str | None = None,
    catalogs: Mapping[str, str] | None = None,
) -> pa.Table:
    """Run a ``SELECT FEATURES`` on Trino through the Trino ``connector``."""

    if isinstance(text_or_plan, FeaturePlan):
        plan = text_or_plan
    else:
        (node,) = parse(text_or_plan)
        if not isinstance(node, SelectFeatures):
            raise InvalidParameter("federated mode runs SELECT FEATURES statements")
        plan = plan_features(store, node, spine=spine)
    conn = on_demand.open_connector(store.catalog, store.project, connector)
    if conn.type_name != "trino":
        raise InvalidParameter(f'connector "{connector}" is {conn.type_name}, not trino')
    sql = federated_sql(store, plan, offline_catalog=offline_catalog, catalogs=catalogs)
    return conn.query_arrow(sql)  # type: ignore[attr-defined, no-any-return]
