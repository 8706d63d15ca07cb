"""The feature query planner: a parsed ``SELECT FEATURES`` becomes a
:class:`FeaturePlan` (which feature groups, join keys, spine, times) and then
ClickHouse SQL built as a sqlglot tree with every identifier quoted.

Point-in-time semantics: for each spine row and each feature group, the row
with equal key and the greatest event time <= the spine time (NULL when
none); among rows with the same key and event time, the latest commit
(resolved by :meth:`OfflineStore.source`). ``FOR SYSTEM_TIME AS OF`` hides
commits made after that time, whatever their event time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from sqlglot import exp

from fsql.bind.binder import bind
from fsql.bind.confine import with_settings
from fsql.bind.pushdown import push_down
from fsql.bind.sources import GroupRelations
from fsql.bind.spines import bind_spine
from fsql.bind.time import evaluate_time
from fsql.catalog import FeatureGroup
from fsql.connectors.engine import input_ref
from fsql.errors import (
    AmbiguousColumn,
    FeatureNotSupported,
    InvalidParameter,
    UndefinedColumn,
    UndefinedObject,
    closest,
    position_of,
)
from fsql.plan.plain import STREAM_BATCH_ROWS, restore_batches, table_reader
from fsql.sql.nodes import SelectFeatures
from fsql.sql.trees import conjuncts
from fsql.store.assign import assign_column
from fsql.store.hooks import Hook
from fsql.store.offline import DIALECT, col, ident, select_from, subquery
from fsql.store.offline import alias as alias_
from fsql.tables import as_arrow, restore_feature_types
from fsql.types import clickhouse_type

if TYPE_CHECKING:
    from fsql.store.core import StoreCore

ROW = "__fsql_row"
SPINE = "__spine"
TIME_PREFIX = "__fsql_t"

# Asked before a pure key lookup runs offline: ``fn(store, plan) -> Table |
# None`` (the online store answers the groups it serves).
key_lookup = Hook("key_lookup")


@dataclass(frozen=True)
class FeatureRef:
    """One requested output column: a feature of ``fg``, or (``fg`` None) a
    column of the spine."""

    fg: FeatureGroup | None
    feature: str
    alias: str


@dataclass
class FeaturePlan:
    features: list[FeatureRef]
    groups: list[FeatureGroup]
    join_keys: dict[int, list[str]]
    key_columns: list[str]
    spine: exp.Expr | None = None
    spine_columns: list[str] = field(default_factory=list)
    spine_types: dict[str, pa.Field] = field(default_factory=dict)
    spine_time: str | None = None
    spine_input: pa.Table | None = None
    as_of_us: int | None = None
    system_time_us: int | None = None
    where: exp.Expr | None = None
    order: exp.Expr | None = None
    limit: exp.Expr | None = None
    offset: exp.Expr | None = None
    lookup_keys: pa.Table | None = None
    source: Any = None  # GroupRelations: how the plan reads its groups

    @property
    def inputs(self) -> list[pa.Table]:
        return [self.spine_input] if self.spine_input is not None else []

    @property
    def output_names(self) -> list[str]:
        if self.spine is not None:
            return [c for c in self.spine_columns if c != ROW] + [
                f.alias for f in self.features if f.fg is not None or f.alias != f.feature
            ]
        return self.key_columns + [f.alias for f in self.features]

    def to_sql(self) -> exp.Select:
        if self.spine is not None:
            return self._spine_sql()
        return self._latest_sql()

    # generation ---------------------------------------------------------

    def _fg_relation(self, fg: FeatureGroup, names: list[str], *, as_of: bool) -> exp.Select:
        q = self.source.source(fg, system_time_us=self.system_time_us, columns=names)
        if as_of and self.as_of_us is not None and fg.event_time:
            ftype = fg.feature(fg.event_time).ftype  # type: ignore[union-attr]
            bound = exp.cast(_micros(self.as_of_us), clickhouse_type(ftype, nullable=False))
            q = q.where(exp.LTE(this=col(fg.event_time), expression=bound), copy=False)
        return q

    def _group_alias(self, i: int) -> str:
        return f"g{i}"

    def _features_of(self, fg: FeatureGroup) -> list[str]:
        seen: list[str] = []
        for f in self.features:
            if f.fg is not None and f.fg.id == fg.id and f.feature not in seen:
                seen.append(f.feature)
        return seen

    def _latest_sql(self) -> exp.Select:
        """No spine: the latest row per key (as of a time) of each group,
        left-joined to the first group."""
        selects: list[exp.Expr] = []
        base_alias = self._group_alias(0)
        q: exp.Select | None = None
        for i, fg in enumerate(self.groups):
            alias = self._group_alias(i)
            keys = list(fg.primary_key)
            names = keys + [n for n in self._features_of(fg) if n not in keys]
            rel = self._fg_relation(
                fg, names + ([fg.event_time] if fg.event_time else []), as_of=True
            )
            for pred in self._key_filters(fg, i):
                rel = rel.where(pred, copy=False)
            if fg.event_time:
                rel = rel.order_by(
                    *[col(k) for k in keys], exp.Ordered(this=col(fg.event_time), desc=True)
                )
                rel.set(
                    "limit",
                    exp.Limit(expression=exp.Literal.number(1), expressions=[col(k) for k in keys]),
                )
            sub = select_from([col(n) for n in names], subquery(rel, "r"))
            if q is None:
                q = select_from([], subquery(sub, alias))
            else:
                on = exp.and_(
                    *[
                        exp.EQ(
                            this=col(
                                k,
                                base_alias
                                if k in self.groups[0].primary_key
                                else self._owner_alias(k, i),
                            ),
                            expression=col(k, alias),
                        )
                        for k in self.join_keys[fg.id]
                    ]
                )
                q.append("joins", exp.Join(this=subquery(sub, alias), side="LEFT", on=on))
        assert q is not None
        for k in self.key_columns:
            selects.append(alias_(col(k, self._owner_alias(k, len(self.groups))), k))
        for f in self.features:
            assert f.fg is not None
            selects.append(alias_(col(f.feature, self._alias_of(f.fg)), f.alias))
        q.set("expressions", selects)
        return self._finish(q)

    def _key_filters(self, fg: FeatureGroup, i: int) -> list[exp.Expr]:
        """The conjuncts of the user's WHERE that test one output key column
        against constants, for group ``i``'s relation. Dropping rows by key
        before picking the latest row per key changes no result (the outer
        WHERE still applies), and lets the engine use the (key, event time)
        order of cached groups and send the filter to on-demand sources."""
        if self.where is None:
            return []
        base_keys = set(self.groups[0].primary_key) & set(self.key_columns)
        aliases = {f.alias for f in self.features}
        out: list[exp.Expr] = []
        for conj in conjuncts(self.where.this):
            if not isinstance(conj, _KEY_PREDICATES) or any(
                isinstance(n, _NOT_CONSTANT) for n in conj.walk()
            ):
                continue
            names = {c.name for c in conj.find_all(exp.Column)}
            if len(names) != 1:
                continue
            (key,) = names
            if key not in base_keys or key not in fg.primary_key or key in aliases:
                continue
            if i > 0 and key not in self.join_keys[fg.id]:
                continue
            moved = conj.copy()
            for c in list(moved.find_all(exp.Column)):
                c.replace(col(key))
            out.append(moved)
        return out

    def _owner_alias(self, key: str, before: int) -> str:
        for j in range(before):
            if key in self.groups[j].primary_key:
                return self._group_alias(j)
        return self._group_alias(0)

    def _alias_of(self, fg: FeatureGroup) -> str:
        for i, g in enumerate(self.groups):
            if g.id == fg.id:
                return self._group_alias(i)
        raise AssertionError(fg.name)

    def _spine_sql(self) -> exp.Select:
        assert self.spine is not None
        time_cols: dict[str, str] = {}  # ClickHouse type -> spine column alias
        spine_select: list[exp.Expr] = [exp.Star()]
        for fg in self.groups:
            if not fg.event_time or self.spine_time is None:
                continue
            ftype = fg.feature(fg.event_time).ftype  # type: ignore[union-attr]
            ch = ftype.clickhouse
            if ch in time_cols:
                continue
            given = self.spine_types.get(self.spine_time)
            if given is not None and given.type.equals(ftype.arrow) and not given.nullable:
                time_cols[ch] = self.spine_time  # already the right type: no cast
                continue
            name = f"{TIME_PREFIX}{len(time_cols)}"
            time_cols[ch] = name
            lowest = exp.cast(
                exp.Literal.string("1900-01-01 00:00:00"), clickhouse_type(ftype, nullable=False)
            )
            spine_select.append(
                exp.alias_(
                    exp.func(
                        "ifNull",
                        exp.cast(col(self.spine_time), clickhouse_type(ftype, nullable=True)),
                        lowest,
                    ),
                    ident(name),
                )
            )
        spine_rel = select_from(spine_select, self.spine.copy())
        q = select_from([], subquery(spine_rel, SPINE))
        for i, fg in enumerate(self.groups):
            alias = self._group_alias(i)
            keys = self.join_keys[fg.id]
            names = list(dict.fromkeys(keys + self._features_of(fg)))
            pit = bool(fg.event_time and self.spine_time is not None)
            if pit:
                names.append(fg.event_time)  # type: ignore[arg-type]
            rel = self._fg_relation(fg, names, as_of=False)
            conds: list[exp.Expr] = [
                exp.EQ(this=col(k, SPINE), expression=col(k, alias)) for k in keys
            ]
            if pit and fg.event_time:
                ftype = fg.feature(fg.event_time).ftype  # type: ignore[union-attr]
                conds.append(
                    exp.GTE(
                        this=col(time_cols[ftype.clickhouse], SPINE),
                        expression=col(fg.event_time, alias),  # type: ignore[arg-type]
                    )
                )
                join = exp.Join(
                    this=subquery(rel, alias),
                    side="LEFT",
                    kind="ASOF",
                    on=exp.and_(*conds, copy=False),
                )
                q.append("joins", join)
            else:
                if fg.event_time:
                    rel = rel.order_by(
                        *[col(k) for k in keys],
                        exp.Ordered(this=col(fg.event_time), desc=True),
                        copy=False,
                    )
                    rel.set(
                        "limit",
                        exp.Limit(
                            expression=exp.Literal.number(1), expressions=[col(k) for k in keys]
                        ),
                    )
                q.append(
                    "joins",
                    exp.Join(
                        this=subquery(rel, alias), side="LEFT", on=exp.and_(*conds, copy=False)
                    ),
                )
        selects: list[exp.Expr] = [alias_(col(c, SPINE), c) for c in self.spine_columns]
        for f in self.features:
            if f.fg is None:
                if f.alias != f.feature:
                    selects.append(alias_(col(f.feature, SPINE), f.alias))
                continue
            selects.append(alias_(col(f.feature, self._alias_of(f.fg)), f.alias))
        q.set("expressions", selects)
        return self._finish(q)

    def _finish(self, q: exp.Select) -> exp.Select:
        """Apply the user's WHERE / ORDER BY / LIMIT to the result columns and
        give spine queries their stable order (the spine's row order)."""
        settings = [exp.EQ(this=exp.var("join_use_nulls"), expression=exp.Literal.number(1))]
        has_row = self.spine is not None and ROW in self.spine_columns
        if self.spine is None and not (self.where or self.order or self.limit or self.offset):
            q.set("settings", settings)
            return q
        names = set(self.output_names)
        if has_row and not (self.order or self.limit or self.offset):
            # The rows go back into spine order after the engine (a numpy
            # permutation is cheaper than a sort): see `restore_spine_order`.
            if self.where is not None:
                q = select_from([exp.Star()], subquery(q, "q"))
                q = q.where(_unqualify(self.where.this.copy(), names | {ROW}), copy=False)
            q.set("settings", settings)
            return q
        star = exp.Star(**({"except_": [col(ROW)]} if has_row else {}))
        outer = select_from([star], subquery(q, "q"))
        if self.where is not None:
            outer = outer.where(_unqualify(self.where.this.copy(), names), copy=False)
        if self.order is not None:
            outer.set("order", _unqualify(self.order.copy(), names))
        elif self.spine is not None:
            if has_row:
                outer = outer.order_by(col(ROW), copy=False)
            else:
                outer = outer.order_by(*[col(c) for c in self.spine_columns], copy=False)
        if self.limit is not None:
            outer.set("limit", self.limit.copy())
        if self.offset is not None:
            outer.set("offset", self.offset.copy())
        outer.set("settings", settings)
        return outer


_KEY_PREDICATES = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.In, exp.Between, exp.Is)
_NOT_CONSTANT = (exp.Subquery, exp.Select, exp.AggFunc, exp.Window, exp.Placeholder, exp.Parameter)


def _micros(us: int) -> exp.Expr:
    return exp.func("fromUnixTimestamp64Micro", exp.Literal.number(us), exp.Literal.string("UTC"))


def _unqualify(node: exp.Expr, names: set[str]) -> exp.Expr:
    """The outer query sees output columns only: ``l.ts`` becomes ``ts``."""
    if isinstance(node, exp.Column) and node.name in names:
        return col(node.name)  # the whole condition is one column (WHERE l.flag)
    for c in list(node.find_all(exp.Column)):
        if c.name in names:
            c.replace(col(c.name))
        elif not isinstance(c.this, exp.Star):
            raise UndefinedColumn(
                f'column "{c.sql()}" is not in the result of SELECT FEATURES',
                hint="Columns: " + ", ".join(sorted(names)),
            )
    return node


# planning ---------------------------------------------------------------


def _latest_groups(store: StoreCore) -> tuple[dict[str, FeatureGroup], dict[str, FeatureGroup]]:
    latest: dict[str, FeatureGroup] = {}
    by_version: dict[str, FeatureGroup] = {}
    for fg in store.feature_groups():
        latest[fg.name] = fg
        by_version[fg.qualified_name] = fg
    return latest, by_version


_position = position_of


def plan_features(
    store: StoreCore,
    node: SelectFeatures,
    *,
    system_time_us: int | None = None,
    spine: Any = None,
) -> FeaturePlan:
    """Resolve a ``SELECT FEATURES`` against the catalog. ``spine`` (an Arrow
    table or DataFrame) replaces the FROM relation when given from Python."""
    latest, by_version = _latest_groups(store)
    # one system time for the whole query, the spine included
    pinned = system_time_us
    if pinned is None and node.args.get("system_time") is not None:
        pinned = evaluate_time(store, node.args["system_time"])
    spine_rel: exp.Expr | None = None
    spine_alias: str | None = None
    spine_columns: list[str] = []
    spine_input: pa.Table | None = None
    spine_fg: FeatureGroup | None = None
    spine_schema = pa.schema([])
    if spine is not None:
        given = _non_nullable_where_full(as_arrow(spine))
        spine_input = given.append_column(
            pa.field(ROW, pa.int64(), nullable=False),
            pa.array(np.arange(given.num_rows, dtype=np.int64)),
        )
        spine_rel = input_ref(0)
        spine_columns = spine_input.column_names
        spine_schema = spine_input.schema
        spine_alias = "spine"
    elif node.args.get("spine") is not None:
        raw = node.args["spine"]
        spine_alias = raw.alias_or_name or "spine"
        rel = raw.copy()
        rel.set("alias", None)
        if (
            isinstance(rel, exp.Table)
            and not rel.db
            and (rel.name in latest or rel.name in by_version)
        ):
            spine_fg = latest.get(rel.name) or by_version[rel.name]
        spine_rel = bind_spine(store, rel, system_time_us=pinned)
        if spine_fg is not None:
            spine_schema = pa.schema(
                [
                    pa.field(f.name, f.ftype.arrow, nullable=f.name not in _not_null(spine_fg))
                    for f in spine_fg.features
                ]
            )
        else:
            probe = exp.select(exp.Star()).from_(spine_rel.copy()).limit(0)
            spine_schema = store.engine.query(probe.sql(DIALECT)).schema
        spine_columns = spine_schema.names
    spine_names = {spine_alias} if spine_alias else set()
    if spine_fg is not None:
        spine_names |= {spine_fg.name, spine_fg.qualified_name}

    # requested features
    refs: list[FeatureRef] = []
    groups: list[FeatureGroup] = []

    def use(fg: FeatureGroup) -> FeatureGroup:
        for g in groups:
            if g.name == fg.name and g.version != fg.version:
                raise FeatureNotSupported(
                    f'two versions of feature group "{fg.name}" in one query',
                    hint="Name one version (fg_vN.feature) for all its features.",
                )
            if g.id == fg.id:
                return g
        groups.append(fg)
        return fg

    for item in node.expressions:
        alias = item.alias if isinstance(item, exp.Alias) else None
        ref = item.this if isinstance(item, exp.Alias) else item
        if not isinstance(ref, exp.Column):
            raise FeatureNotSupported(
                f"{ref.sql(dialect='postgres')} is not a feature reference",
                position=_position(ref),
                hint="SELECT FEATURES takes names: feature, fg.feature, fg.*, fg_v2.feature.",
            )
        table = ref.table
        name = ref.name
        if isinstance(ref.this, exp.Star):
            if spine_rel is not None and table in spine_names and spine_fg is None:
                for c in spine_columns:
                    if c != ROW:
                        refs.append(FeatureRef(None, c, c))
                continue
            fg = _resolve_group(table, latest, by_version, ref)
            fg = use(fg)
            for f in fg.value_features:
                refs.append(FeatureRef(fg, f.name, f.name))
            continue
        if table:
            if table in spine_names and spine_rel is not None:
                if name not in spine_columns:
                    raise UndefinedColumn(
                        f'column "{table}.{name}" does not exist in the spine',
                        position=_position(ref),
                        hint=_hint(name, spine_columns),
                    )
                refs.append(FeatureRef(None, name, alias or name))
                continue
            fg = _resolve_group(table, latest, by_version, ref)
            if fg.feature(name) is None:
                raise UndefinedColumn(
                    f'feature "{name}" does not exist in feature group "{table}"',
                    position=_position(ref),
                    hint=_hint(name, fg.feature_names),
                )
            refs.append(FeatureRef(use(fg), name, alias or name))
            continue
        owners = [
            fg
            for fg in latest.values()
            if fg.feature(name) is not None and (spine_fg is None or fg.name != spine_fg.name)
        ]
        if spine_rel is not None and name in spine_columns and not owners:
            refs.append(FeatureRef(None, name, alias or name))
            continue
        if (
            spine_rel is not None
            and name in spine_columns
            and all(name in fg.primary_key for fg in owners)
        ):
            continue  # a join key: the spine's column is in the result already
        if len(owners) > 1 and all(name in fg.primary_key for fg in owners) and not alias:
            continue  # an entity key: the result carries the keys anyway
        if len(owners) > 1:
            raise AmbiguousColumn(
                f'feature "{name}" is ambiguous: it exists in '
                + " and ".join(f'"{fg.name}.{name}"' for fg in owners),
                position=_position(ref),
                hint="Qualify it: " + ", ".join(f"{fg.name}.{name}" for fg in owners),
            )
        if not owners:
            every = sorted({f.name for fg in latest.values() for f in fg.features})
            raise UndefinedColumn(
                f'feature "{name}" does not exist',
                position=_position(ref),
                hint=_hint(name, every),
            )
        refs.append(FeatureRef(use(owners[0]), name, alias or name))

    if not groups:
        raise InvalidParameter(
            "SELECT FEATURES names no feature of a feature group", sqlstate="42601"
        )

    # join keys
    join_keys: dict[int, list[str]] = {}
    if spine_rel is not None:
        for fg in groups:
            keys = [k for k in fg.primary_key if k in spine_columns]
            if not keys:
                raise UndefinedColumn(
                    f'no join path from the spine to feature group "{fg.name}": the spine has '
                    f"none of its primary-key columns ({', '.join(fg.primary_key)})",
                    sqlstate="42P10",
                    hint="Give the spine a column named like the key, e.g. SELECT id AS "
                    f"{fg.primary_key[0]} ...",
                )
            join_keys[fg.id] = keys
        key_columns: list[str] = []
    else:
        available = list(groups[0].primary_key)
        join_keys[groups[0].id] = list(groups[0].primary_key)
        for fg in groups[1:]:
            keys = [k for k in fg.primary_key if k in available]
            if not keys:
                raise UndefinedColumn(
                    f'no join path to feature group "{fg.name}": its primary key '
                    f"({', '.join(fg.primary_key)}) shares no column with "
                    f"({', '.join(available)})",
                    sqlstate="42P10",
                    hint="Join through a spine that has the keys of both: "
                    "SELECT FEATURES ... FROM spine AS OF spine.ts",
                )
            join_keys[fg.id] = keys
            available += [k for k in fg.primary_key if k not in available]
        # a group keyed wider than the ones before it (customer, merchant
        # after customer) has several rows per entity: its extra key columns
        # are output too, so those rows can be told apart
        key_columns = available
        refs = [
            r
            for r in refs
            if not (r.fg is not None and r.feature in key_columns and r.alias == r.feature)
        ]

    # duplicate output names
    out_names = (
        [c for c in spine_columns if c != ROW] if spine_rel is not None else list(key_columns)
    )
    for r in refs:
        if r.fg is None and r.alias == r.feature:
            continue
        if r.alias in out_names:
            raise AmbiguousColumn(
                f'output column "{r.alias}" appears twice',
                hint=f"Give one an alias: {r.fg.name if r.fg else 'spine'}.{r.feature} AS ...",
            )
        out_names.append(r.alias)

    plan = FeaturePlan(
        features=refs,
        groups=groups,
        join_keys=join_keys,
        key_columns=key_columns,
        spine=spine_rel,
        spine_columns=spine_columns,
        spine_types={f.name: f for f in spine_schema},
        spine_input=spine_input,
        where=_bound(store, node.args.get("where"), pinned),
        order=_bound(store, node.args.get("order"), pinned),
        limit=_bound(store, node.args.get("limit"), pinned),
        offset=_bound(store, node.args.get("offset"), pinned),
        source=GroupRelations(store),
    )
    # times
    as_of = node.args.get("as_of")
    if as_of is not None:
        if (
            isinstance(as_of, exp.Column)
            and spine_rel is not None
            and ((as_of.table in spine_names or not as_of.table) and as_of.name in spine_columns)
        ):
            plan.spine_time = as_of.name
        elif isinstance(as_of, exp.Column) and spine_rel is not None:
            raise UndefinedColumn(
                f'AS OF column "{as_of.sql()}" is not a column of the spine',
                position=_position(as_of),
                hint=_hint(as_of.name, spine_columns),
            )
        else:
            plan.as_of_us = evaluate_time(store, as_of)
            if spine_rel is not None:
                raise FeatureNotSupported(
                    "with a spine, AS OF names the spine's time column (AS OF spine.ts)",
                    position=_position(as_of),
                )
    elif spine_rel is not None:
        raise InvalidParameter(
            "a spine needs AS OF spine.time_column to join point-in-time",
            sqlstate="42601",
            hint="SELECT FEATURES ... FROM labels AS OF labels.event_ts",
        )
    plan.system_time_us = pinned
    if spine_rel is None and plan.as_of_us is None and plan.system_time_us is None:
        plan.lookup_keys = _lookup_keys(plan)
    return plan


def _bound(store: StoreCore, clause: exp.Expr | None, system_time_us: int | None) -> Any:
    """A clause of the user's query with its subqueries' tables bound (and
    confined), like any plain SQL."""
    if clause is None:
        return None
    return bind(store, clause, system_time_us=system_time_us)


def _not_null(fg: FeatureGroup) -> set[str]:
    return set(fg.primary_key) | ({fg.event_time} if fg.event_time else set())


def _non_nullable_where_full(table: pa.Table) -> pa.Table:
    """Mark columns without nulls non-nullable, so the engine reads them as
    plain (not Nullable) types and joins them without conversions."""
    fields = [
        f.with_nullable(False) if f.nullable and table.column(i).null_count == 0 else f
        for i, f in enumerate(table.schema)
    ]
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema.equals(table.schema) else table.cast(schema)


def _hint(name: str, candidates: list[str]) -> str | None:
    found = closest(name, candidates)
    return ("Did you mean " + " or ".join(repr(c) for c in found) + "?") if found else None


def _resolve_group(
    table: str,
    latest: dict[str, FeatureGroup],
    by_version: dict[str, FeatureGroup],
    ref: exp.Expr,
) -> FeatureGroup:
    fg = latest.get(table) or by_version.get(table)
    if fg is None:
        raise UndefinedObject(
            f'feature group "{table}" does not exist',
            position=_position(ref),
            hint=_hint(table, sorted(set(latest) | set(by_version))),
        )
    return fg


def _literal_value(node: exp.Expr) -> Any:
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = node.this
        return int(text) if text.lstrip("-").isdigit() else float(text)
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        return -_literal_value(node.this)
    raise ValueError


def _lookup_keys(plan: FeaturePlan) -> pa.Table | None:
    """Key values of a pure key lookup (``k = 1 AND k2 = 'a'``, ``k IN (...)``)."""
    where = plan.where
    if where is None or plan.order is not None or plan.offset is not None:
        return None
    keys = plan.key_columns
    found: dict[str, list[Any]] = {}
    for cond in conjuncts(where.this):
        if isinstance(cond, exp.EQ) and isinstance(cond.this, exp.Column):
            target, values = cond.this.name, [cond.expression]
        elif (
            isinstance(cond, exp.In)
            and isinstance(cond.this, exp.Column)
            and not cond.args.get("query")
        ):
            target, values = cond.this.name, list(cond.expressions)
        else:
            return None
        if target not in keys or target in found:
            return None
        try:
            found[target] = [_literal_value(v) for v in values]
        except ValueError:
            return None
    if set(found) != set(keys):
        return None
    lengths = {len(v) for v in found.values()}
    if len(keys) > 1 and lengths != {1}:
        return None  # IN on one column of a composite key: not a plain lookup
    fg = plan.groups[0]
    arrays = []
    for k in keys:
        ftype = fg.feature(k).ftype  # type: ignore[union-attr]
        # key values convert as PostgreSQL compares a column with constants:
        # '42' is 42, 'x' for a bigint key is 22P02 (not an engine error)
        values = []
        for v in found[k]:
            try:
                values.append(assign_column(pa.array([v]), ftype, k))
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                return None
        arrays.append(pa.concat_arrays(values) if values else pa.array([], ftype.arrow))
    return pa.Table.from_arrays(arrays, names=keys)


def execute_plan(store: StoreCore, plan: FeaturePlan) -> pa.Table:
    found = _online_answer(store, plan)
    if found is not None:
        return found
    result = restore_spine_order(store.engine.query(_engine_sql(store, plan), plan.inputs))
    return restore_feature_types(result, plan.groups, binary=_binary_spine_columns(plan))


def stream_plan(
    store: StoreCore, plan: FeaturePlan, batch_rows: int = STREAM_BATCH_ROWS
) -> pa.RecordBatchReader:
    """:func:`execute_plan` as a stream of record batches read from the
    engine as the client reads them. A plan with a spine runs materialized:
    its rows come back in the spine's order only once all of them are
    there (:func:`restore_spine_order`); so do online answers."""
    if plan.spine is not None:
        return table_reader(execute_plan(store, plan))
    found = _online_answer(store, plan)
    if found is not None:
        return table_reader(found)
    reader = store.engine.stream(_engine_sql(store, plan), batch_rows)
    return restore_batches(reader, plan.groups, binary=_binary_spine_columns(plan))


def _online_answer(store: StoreCore, plan: FeaturePlan) -> pa.Table | None:
    """A pure key lookup answered by the ``key_lookup`` hook (the online store)."""
    if plan.lookup_keys is None:
        return None
    return key_lookup.first(store, plan)  # type: ignore[no-any-return]


def _engine_sql(store: StoreCore, plan: FeaturePlan) -> str:
    """The plan's SQL as it runs, materialized or streamed: pushed down,
    with the engine settings (:mod:`fsql.bind.confine`)."""
    return with_settings(store, push_down(plan.to_sql())).sql(DIALECT)


def _binary_spine_columns(plan: FeaturePlan) -> list[str]:
    spine = plan.spine_input.schema if plan.spine_input is not None else []
    return [f.name for f in spine if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]


def restore_spine_order(table: pa.Table) -> pa.Table:
    """Order rows by the spine's row numbers (``__fsql_row``) and drop them."""
    if ROW not in table.column_names:
        return table
    rows = table.column(ROW).to_numpy()
    table = table.drop_columns([ROW])
    n = rows.size
    if n == 0 or bool((rows[1:] > rows[:-1]).all()):
        return table
    if n == int(rows.max()) + 1:  # every spine row is there: invert the permutation
        order = np.empty(n, dtype=np.int64)
        order[rows] = np.arange(n, dtype=np.int64)
    else:  # a WHERE dropped some
        order = np.argsort(rows, kind="stable")
    return table.take(pa.array(order))
