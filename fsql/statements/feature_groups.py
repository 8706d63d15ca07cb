"""Executors of the feature-store statements."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from fsql.bind.binder import bind
from fsql.bind.confine import is_public, refuse_qualified, with_settings
from fsql.bind.pushdown import push_down, source_lines
from fsql.catalog import Feature, FeatureGroup
from fsql.errors import (
    DuplicateColumn,
    EngineError,
    FeatureNotSupported,
    InvalidParameter,
    UndefinedColumn,
    UndefinedObject,
    position_of,
)
from fsql.online.api import service_of
from fsql.plan.features import execute_plan, plan_features
from fsql.plan.plain import run_plain
from fsql.sql import nodes
from fsql.statements.registry import executes
from fsql.store.assign import assign_column
from fsql.store.offline import DIALECT, ident, subquery
from fsql.types import from_arrow, from_name

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


def _text(node: exp.Expr | None) -> str | None:
    return None if node is None else str(node.this if isinstance(node, exp.Literal) else node.name)


def _version(node: exp.Expr) -> int | None:
    v = node.args.get("version")
    return int(v.this) if v is not None else None


def _status(message: str) -> pa.Table:
    """DDL returns one row saying what it did (psql shows it as a command tag)."""
    return pa.table({"status": [message]})


@executes(nodes.SelectFeatures)
def select_features(store: StoreCore, node: exp.Expr) -> pa.Table:
    assert isinstance(node, nodes.SelectFeatures)
    return execute_plan(store, plan_features(store, node))


@executes(nodes.CreateFeatureGroup)
def create_feature_group(store: StoreCore, node: exp.Expr) -> pa.Table:
    name = node.name
    version = _version(node)
    if node.args.get("exists"):
        existing = [fg for fg in store.feature_groups() if fg.name == name]
        if existing and (version is None or any(fg.version == version for fg in existing)):
            return _status(f"feature group {name} already exists, skipped")
    keys = [k.name for k in node.args["primary_key"]]
    event_time = node.args["event_time"].name if node.args.get("event_time") else None
    description = _text(node.args.get("description")) or ""
    metadata = {
        str(pair.expressions[0].this): str(pair.expressions[1].this)
        for pair in node.args.get("metadata") or []
    }
    data = None
    schema, descriptions = _declared_columns(node)
    if node.args.get("query") is not None:
        query = with_settings(store, push_down(bind(store, node.args["query"])))
        data = store.engine.query(query.sql(DIALECT), query.meta.get("fsql_inputs", ()))
    fg = store.create_group(
        name,
        data,
        primary_key=keys,
        event_time=event_time,
        schema=schema,
        description=description,
        features=descriptions or None,
        version=version,
        online=bool(node.args.get("online")),
        metadata=metadata or None,
    )
    rows = f" with {data.num_rows} rows" if data is not None else ""
    return _status(f"created feature group {fg.name} version {fg.version}{rows}")


def _declared_columns(node: exp.Expr) -> tuple[dict[str, str] | None, dict[str, str]]:
    """CREATE FEATURE GROUP's declared columns: name -> type (None when the
    group takes them from AS SELECT) and name -> COMMENT."""
    if not node.args.get("columns"):
        return None, {}
    schema: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    for column in node.args["columns"]:
        kind = column.args.get("kind")
        if kind is None:
            raise InvalidParameter(f'column "{column.name}" needs a type', sqlstate="42601")
        if column.name in schema:
            raise DuplicateColumn(
                f'column "{column.name}" specified more than once',
                position=position_of(column),
            )
        schema[column.name] = from_name(kind.sql(dialect="postgres")).name
        for constraint in column.args.get("constraints") or []:
            if isinstance(constraint.kind, exp.CommentColumnConstraint):
                descriptions[column.name] = str(constraint.kind.this.this)
    return schema, descriptions


@executes(exp.Insert)
def insert(store: StoreCore, node: exp.Expr) -> pa.Table:
    """INSERT INTO fg [(cols)] VALUES ... | SELECT ...: one commit."""
    target = node.this.this if isinstance(node.this, exp.Schema) else node.this
    if not isinstance(target, exp.Table):
        raise FeatureNotSupported("INSERT needs a feature group name")
    fg = _insert_target(store, node)
    if fg is None:
        raise UndefinedObject(
            f'relation "{target.sql(dialect="postgres")}" does not exist',
            position=position_of(target),
            hint="INSERT writes feature groups: "
            + ", ".join(sorted({g.name for g in store.feature_groups()})),
        )
    columns = _insert_columns(node, fg)
    unknown = [c for c in columns if fg.feature(c) is None]
    if unknown:
        raise UndefinedColumn(
            f'column(s) {", ".join(unknown)} of relation "{fg.name}" do not exist',
            hint="Columns: " + ", ".join(fg.feature_names),
        )
    source = node.expression
    # the source is evaluated with its own types; the values become feature
    # types by PostgreSQL's assignment rules (fsql.store.assign), never by an
    # engine CAST that would wrap, truncate or null a value that does not fit
    if isinstance(source, exp.Values):
        data = _values_table(store, len(columns), source)
    else:
        data = run_plain(store, source)
    if data.num_columns != len(columns):
        raise InvalidParameter(
            f"INSERT has {data.num_columns} expressions but {len(columns)} target columns",
            sqlstate="42601",
        )
    data = pa.table(
        [
            assign_column(data.column(i), fg.feature(c).ftype, c)  # type: ignore[union-attr]
            for i, c in enumerate(columns)
        ],
        names=columns,
    )
    missing = [c for c in fg.feature_names if c not in columns]
    for c in missing:
        ftype = fg.feature(c).ftype  # type: ignore[union-attr]
        data = data.append_column(c, pa.nulls(data.num_rows, ftype.arrow))
    commit = store.commit(fg, data)
    return _status(f"INSERT 0 {commit.row_count}")


def _values_rows(width: int, values: exp.Values) -> list[list[exp.Expr]]:
    rows = []
    for row in values.expressions:
        items = row.expressions if isinstance(row, exp.Tuple) else [row]
        if len(items) != width:
            raise InvalidParameter(
                f"VALUES row has {len(items)} values but {width} target columns",
                sqlstate="42601",
            )
        rows.append(items)
    return rows


def _values_union(rows: list[list[exp.Expr]], *, as_text: bool = False) -> exp.Expr:
    """The VALUES rows as one engine query (columns ``c0``, ``c1``, ...)."""
    selects = []
    for items in rows:
        exprs = []
        for i, v in enumerate(items):
            v = v.copy()
            if as_text and not isinstance(v, exp.Null):
                v = exp.func("toString", v)
            exprs.append(exp.alias_(v, ident(f"c{i}")))
        selects.append(exp.select(*exprs))
    union: exp.Expr = selects[0]
    for s in selects[1:]:
        union = exp.union(union, s, distinct=False)
    return union


def _values_table(store: StoreCore, width: int, values: exp.Values) -> pa.Table:
    """VALUES rows evaluated by the engine with their own types. Where rows
    mix kinds in one column the engine returns a Variant; where it finds no
    common type at all the rows are evaluated as text, which the assignment
    casts then parse."""
    rows = _values_rows(width, values)

    def run(as_text: bool) -> pa.Table:
        query = bind(store, _values_union(rows, as_text=as_text))
        return store.engine.query(query.sql(DIALECT), query.meta.get("fsql_inputs", ()))

    try:
        table = run(as_text=False)
    except EngineError as e:
        if "Code: 386" not in e.message:  # NO_COMMON_TYPE
            raise
        return run(as_text=True)
    return table  # a column mixing kinds is a Variant (Arrow union): fsql.store.assign splits it


def _group(
    store: StoreCore, name: str, version: int | None = None, node: exp.Expr | None = None
) -> FeatureGroup:
    """The feature group ``name`` (``fg`` or ``fg_vN``); an unknown one is
    42P01 at the position of ``node``'s name."""
    try:
        for fg in store.feature_groups():
            if fg.qualified_name == name and version is None:
                return store.feature_group(fg.name, fg.version)
        return store.feature_group(name, version)
    except UndefinedObject as e:
        if e.position is None and node is not None:
            e.position = position_of(node.this if isinstance(node.this, exp.Expr) else node)
        raise


@executes(nodes.DropFeatureGroup)
def drop_feature_group(store: StoreCore, node: exp.Expr) -> pa.Table:
    version = _version(node)
    try:
        fg = _group(store, node.name, version, node)
    except UndefinedObject:
        if node.args.get("exists"):
            return _status(f"feature group {node.name} does not exist, skipped")
        raise
    if version is None and fg.qualified_name != node.name:
        # DROP FEATURE GROUP name drops every version
        for each in [g for g in store.feature_groups() if g.name == node.name]:
            store.drop_feature_group(each)
        return _status(f"dropped feature group {node.name}")
    store.drop_feature_group(fg)
    return _status(f"dropped feature group {fg.name} version {fg.version}")


_FG_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("version", pa.int32()),
        ("kind", pa.string()),
        ("primary_key", pa.string()),
        ("event_time", pa.string()),
        ("online", pa.bool_()),
        ("features", pa.int32()),
        ("description", pa.string()),
    ]
)


def _like(pattern: exp.Expr | None) -> Any:
    import re

    if pattern is None:
        return lambda _s: True
    text = str(pattern.this)
    rx = re.compile(
        "^"
        + "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in text)
        + "$",
        re.IGNORECASE,
    )
    return lambda s: bool(rx.match(s))


@executes(nodes.ShowFeatureGroups)
def show_feature_groups(store: StoreCore, node: exp.Expr) -> pa.Table:
    match = _like(node.args.get("like"))
    rows = [
        {
            "name": fg.name,
            "version": fg.version,
            "kind": fg.kind,
            "primary_key": ", ".join(fg.primary_key),
            "event_time": fg.event_time,
            "online": fg.online,
            "features": len(fg.features),
            "description": fg.description,
        }
        for fg in store.feature_groups()
        if match(fg.name)
    ]
    return pa.Table.from_pylist(rows, schema=_FG_SCHEMA)


_FEATURE_SCHEMA = pa.schema(
    [
        ("feature_group", pa.string()),
        ("version", pa.int32()),
        ("feature", pa.string()),
        ("type", pa.string()),
        ("role", pa.string()),
        ("description", pa.string()),
    ]
)


def _role(fg: FeatureGroup, name: str) -> str:
    if name in fg.primary_key:
        return "primary key"
    if name == fg.event_time:
        return "event time"
    return "feature"


@executes(nodes.ShowFeatures)
def show_features(store: StoreCore, node: exp.Expr) -> pa.Table:
    match = _like(node.args.get("like"))
    if node.args.get("this") is not None:
        groups = [_group(store, node.name, node=node)]
    else:
        latest: dict[str, FeatureGroup] = {}
        for fg in store.feature_groups():
            latest[fg.name] = fg
        groups = list(latest.values())
    rows = [
        {
            "feature_group": fg.name,
            "version": fg.version,
            "feature": f.name,
            "type": f.type,
            "role": _role(fg, f.name),
            "description": f.description,
        }
        for fg in groups
        for f in fg.features
        if match(f.name)
    ]
    return pa.Table.from_pylist(rows, schema=_FEATURE_SCHEMA)


@executes(exp.Describe)
def describe(store: StoreCore, node: exp.Expr) -> pa.Table:
    """``DESCRIBE t``: a feature group is described as by DESCRIBE FEATURE
    GROUP; any other relation (a training dataset, ``connector.table``) by
    its columns and their PostgreSQL types."""
    target = node.this
    if isinstance(target, exp.Table) and target.name and _insert_target(store, node) is not None:
        fg = _group(store, target.name, node=target)
        return describe_feature_group(
            store, nodes.DescribeFeatureGroup(this=exp.to_identifier(fg.qualified_name))
        )
    if not isinstance(target, exp.Table):
        raise FeatureNotSupported("DESCRIBE takes a relation name", position=position_of(node))
    probe = exp.select(exp.Star()).from_(target.copy()).limit(0)
    bound = with_settings(store, push_down(bind(store, probe)))
    schema = store.engine.query(bound.sql(DIALECT), bound.meta.get("fsql_inputs", ())).schema
    return pa.table(
        {
            "column": [f.name for f in schema],
            "type": [from_arrow(f.type).name for f in schema],
        }
    )


@executes(nodes.DescribeFeatureGroup)
def describe_feature_group(store: StoreCore, node: exp.Expr) -> pa.Table:
    fg = _group(store, node.name, _version(node), node)
    commits = len(store.catalog.commits(fg, state="committed"))
    rows = [
        {
            "feature_group": fg.name,
            "version": fg.version,
            "feature": f.name,
            "type": f.type,
            "role": _role(fg, f.name),
            "description": f.description,
        }
        for f in fg.features
    ]
    table = pa.Table.from_pylist(rows, schema=_FEATURE_SCHEMA)
    meta = {
        "description": fg.description,
        "kind": fg.kind,
        "online": str(fg.online).lower(),
        "commits": str(commits),
        "metadata": json.dumps(fg.metadata, sort_keys=True),
    }
    if fg.kind == "on_demand":
        meta.update(connector=fg.connector or "", query=fg.query or "")
    return table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})


@executes(nodes.SearchFeatures)
def search_features(store: StoreCore, node: exp.Expr) -> pa.Table:
    return store.search(str(node.this.this))


@executes(nodes.AlterFeatureGroup)
def alter_feature_group(store: StoreCore, node: exp.Expr) -> pa.Table:
    fg = _group(store, node.name, _version(node), node)
    action = node.args["action"]
    values = node.args.get("values") or []
    if action == "set_metadata":
        store.catalog.set_metadata(
            fg, {str(p.expressions[0].this): str(p.expressions[1].this) for p in values}
        )
        return _status(f"ALTER FEATURE GROUP {fg.name}: metadata set")
    if action == "unset_metadata":
        missing = store.catalog.remove_metadata(fg, [str(v.this) for v in values])
        note = f" (not present: {', '.join(missing)})" if missing else ""
        return _status(f"ALTER FEATURE GROUP {fg.name}: metadata removed{note}")
    if action == "set_description":
        store.catalog.set_description(fg, str(values[0].this))
        return _status(f"ALTER FEATURE GROUP {fg.name}: description set")
    if action in ("set_online", "set_offline"):
        service_of(store).set_online(fg, action == "set_online")
        return _status(f"ALTER FEATURE GROUP {fg.name}: {action[4:]}")
    raise FeatureNotSupported(f"ALTER FEATURE GROUP {action}")


@executes(nodes.ExplainStatement)
def explain(store: StoreCore, node: exp.Expr) -> pa.Table:
    """The engine SQL a statement runs, one line per row."""
    inner = node.this
    if isinstance(inner, nodes.SelectFeatures):
        plan = plan_features(store, inner)
        lines = [f"-- feature groups: {', '.join(g.qualified_name for g in plan.groups)}"]
        if plan.lookup_keys is not None:
            lines.append(f"-- key lookup: {plan.lookup_keys.num_rows} key(s)")
        bound = push_down(plan.to_sql())
        lines.append(bound.sql(DIALECT, pretty=True))
        lines += source_lines(bound)
    elif isinstance(inner, exp.Query):
        bound = push_down(bind(store, inner))
        lines = [bound.sql(DIALECT, pretty=True), *source_lines(bound)]
    elif isinstance(inner, exp.Insert) and (target := _insert_target(store, inner)) is not None:
        lines = _explain_insert(store, inner, target)
    elif isinstance(inner, nodes.CreateFeatureGroup):
        lines = _explain_create(store, inner)
    elif isinstance(inner, nodes.DropFeatureGroup):
        fg = _group(store, inner.name, _version(inner), inner)
        versions = [fg]
        if _version(inner) is None and fg.qualified_name != inner.name:
            versions = [g for g in store.feature_groups() if g.name == inner.name]
        lines = [f"-- catalog: drop {', '.join(g.qualified_name for g in versions)}"]
        for g in versions:
            lines += store.offline.explain_drop(g)
    else:
        lines = [f"-- {type(inner).__name__} runs in the catalog, no engine SQL"]
    text = "\n".join(lines)
    return pa.table({"QUERY PLAN": text.split("\n")})


def _insert_target(store: StoreCore, node: exp.Expr) -> FeatureGroup | None:
    """The feature group an INSERT writes (``fg`` is its latest version),
    or None when the target is not one."""
    target = node.this.this if isinstance(node.this, exp.Schema) else node.this
    if not isinstance(target, exp.Table):
        return None
    if target.db and not is_public(store.project, target):
        raise refuse_qualified(target)
    for fg in store.feature_groups():
        if target.name in (fg.name, fg.qualified_name):
            return _group(store, target.name, node=target)
    return None


def _insert_columns(node: exp.Expr, fg: FeatureGroup) -> list[str]:
    """The INSERT's column list, or every feature of ``fg``."""
    if isinstance(node.this, exp.Schema):
        return [c.name for c in node.this.expressions]
    return fg.feature_names


def _source_sql(store: StoreCore, source: exp.Expr, width: int) -> list[str]:
    """The engine query that evaluates an INSERT's or CTAS's rows."""
    if isinstance(source, exp.Values):
        return [_values_union(_values_rows(width, source)).sql(DIALECT, pretty=True) + ";"]
    bound = push_down(bind(store, source))
    return [bound.sql(DIALECT, pretty=True) + ";", *source_lines(bound)]


def _explain_insert(store: StoreCore, node: exp.Insert, fg: FeatureGroup) -> list[str]:
    columns = _insert_columns(node, fg)
    lines = [
        f"-- rows for {fg.qualified_name}, converted to its feature types (fsql.store.assign):"
    ]
    lines += _source_sql(store, node.expression, len(columns))
    return lines + store.offline.explain_commit(fg, fg.feature_names)


def _explain_create(store: StoreCore, node: exp.Expr) -> list[str]:
    name = node.name
    taken = [g.version for g in store.feature_groups() if g.name == name]
    version = _version(node) or (max(taken, default=0) + 1)
    query = node.args.get("query")
    declared, _ = _declared_columns(node)
    if declared is not None:
        features = [Feature(n, t) for n, t in declared.items()]
    elif query is not None:
        probe = exp.select(exp.Star()).from_(subquery(bind(store, query), "probe")).limit(0)
        schema = store.engine.query(probe.sql(DIALECT)).schema
        features = [Feature(f.name, from_arrow(f.type).name) for f in schema]
    else:
        features = []
    fg = FeatureGroup(
        id=0,
        project=store.project,
        name=name,
        version=version,
        kind="cached",
        description="",
        primary_key=tuple(k.name for k in node.args["primary_key"]),
        event_time=node.args["event_time"].name if node.args.get("event_time") else None,
        online=bool(node.args.get("online")),
        has_upserts=False,
        features=tuple(features),
        created_at_us=0,
    )
    lines = [f"-- catalog: register {fg.qualified_name}", *store.offline.explain_create(fg)]
    if query is not None:
        lines.append("-- its first commit, from:")
        lines += _source_sql(store, query, len(features))
        lines += store.offline.explain_commit(fg, fg.feature_names)
    return lines


@executes(exp.Command)
def command(store: StoreCore, node: exp.Expr) -> pa.Table:
    """SHOW <setting> and the like, answered with PostgreSQL's defaults."""
    if str(node.this).upper() == "SHOW":
        name = str(node.expression.this).strip().lower()
        value = _SETTINGS.get(name)
        if value is None:
            raise UndefinedObject(
                f'unrecognized configuration parameter "{name}"',
                sqlstate="42704",
                hint=_NEAR_MISSES.get(name),
            )
        return pa.table({name.replace(" ", "_"): [value]})
    raise FeatureNotSupported(f"{node.this} is not supported", sqlstate="0A000")


# what a user coming from MySQL, ClickHouse or psql may mean
_NEAR_MISSES = {
    "tables": "Feature groups are the tables: SHOW FEATURE GROUPS (or \\dt in psql).",
    "databases": "Projects are the databases: \\l in psql.",
    "features": "SHOW FEATURES [FROM fg] [LIKE 'pattern'].",
    "columns": "DESCRIBE fg, or SHOW FEATURES FROM fg.",
}

_SETTINGS = {
    "server_version": "16.0 (fsql)",
    "search_path": '"$user", public',
    "transaction isolation level": "read committed",
    "standard_conforming_strings": "on",
    "client_encoding": "UTF8",
    "datestyle": "ISO, MDY",
    "timezone": "UTC",
    "max_identifier_length": "63",
}
