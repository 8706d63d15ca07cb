"""A store: the catalog, the offline store and the engine behind one folder."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from fsql.catalog import Catalog, Feature, FeatureGroup
from fsql.catalog.service import DEFAULT_PROJECT
from fsql.connectors.engine import Engine
from fsql.errors import (
    DatatypeMismatch,
    DuplicateColumn,
    DuplicateObject,
    InvalidParameter,
    UndefinedColumn,
)
from fsql.feature_group import FeatureGroupHandle
from fsql.lock import StoreLock
from fsql.offline import OfflineStore
from fsql.online.api import OnlineMixin
from fsql.tables import as_arrow
from fsql.types import FeatureType, from_arrow, from_name

if TYPE_CHECKING:
    from fsql.training.dataset import RebuildResult, TrainingDataset

CONFIG_FILE = "fsql.json"


def _open_engine(offline: str, folder: Path) -> Engine:
    if offline == "chdb":
        from fsql.connectors.chdb_engine import ChdbEngine

        return ChdbEngine(str(folder / "offline"))
    if offline.startswith(("clickhouse://", "clickhouses://", "http://", "https://")):
        from fsql.connectors.clickhouse_engine import ClickHouseEngine

        return ClickHouseEngine(offline)
    raise InvalidParameter(
        f"unknown offline store {offline!r}",
        hint="Use 'chdb' (embedded) or a clickhouse://host:port/database URL.",
    )


class Store(OnlineMixin):
    """One feature store. Create with :func:`fsql.connect`."""

    def __init__(
        self,
        path: str | Path,
        *,
        offline: str | None = None,
        catalog: str | None = None,
        project: str = DEFAULT_PROJECT,
        online: str | None = None,
    ) -> None:
        self.path = Path(path).expanduser().resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        config = self._config(offline, catalog, online)
        self._online_url = config.get("online", "embedded")  # fsql.online
        self._online_service = None
        self.project = project
        self._lock: StoreLock | None = None
        if config["offline"] == "chdb":
            self._lock = StoreLock(self.path)
            self._lock.acquire()
        try:
            catalog_url = config["catalog"]
            if catalog_url == "sqlite":
                catalog_url = f"sqlite:///{self.path / 'catalog.sqlite'}"
            self.catalog = Catalog(catalog_url)
            self.catalog.ensure_project(project)
            self.engine = _open_engine(config["offline"], self.path)
            self.offline = OfflineStore(self.engine, self.catalog)
            self.offline.ensure_database(project)
            self.offline.recover()
        except BaseException:
            self.close()
            raise
        # only a store that opened (and, embedded, is ours) records its settings:
        # a second process or a bad URL must not rewrite another's fsql.json
        self._save_config(config)
        self._closed = False

    def _config(
        self, offline: str | None, catalog: str | None, online: str | None = None
    ) -> dict[str, str]:
        file = self.path / CONFIG_FILE
        config = {"offline": "chdb", "catalog": "sqlite"}
        if file.exists():
            config.update(json.loads(file.read_text()))
        if offline:
            config["offline"] = offline
        if catalog:
            config["catalog"] = catalog
        if online:
            config["online"] = online
        return config

    def _save_config(self, config: dict[str, str]) -> None:
        file = self.path / CONFIG_FILE
        if file.exists() and json.loads(file.read_text()) == config:
            return
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2) + "\n")
        tmp.replace(file)

    # lifecycle ----------------------------------------------------------

    def close(self) -> None:
        self._close_online()
        for part in ("engine", "catalog"):
            obj = getattr(self, part, None)
            if obj is not None:
                obj.close()
                setattr(self, part, None)
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._closed = True

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # feature groups -----------------------------------------------------

    def create_feature_group(
        self,
        name: str,
        data: Any = None,
        *,
        primary_key: str | Sequence[str],
        event_time: str | None = None,
        schema: Mapping[str, str] | pa.Schema | None = None,
        description: str = "",
        features: Mapping[str, str] | None = None,
        version: int | None = None,
        online: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> FeatureGroupHandle:
        """Create a cached feature group; ``data`` (optional) is its first commit.

        The schema comes from ``schema`` (column name to SQL type name, or an
        Arrow schema) or else from ``data``. ``features`` maps feature names to
        descriptions.
        """
        keys = [primary_key] if isinstance(primary_key, str) else list(primary_key)
        table = as_arrow(data) if data is not None else None
        columns = _columns(schema, table)
        _check_names(name, columns, keys, event_time, features)
        descriptions = dict(features or {})
        if version is None:
            taken = [g.version for g in self.feature_groups() if g.name == name]
            if taken:
                raise DuplicateObject(
                    f'feature group "{name}" already exists (version '
                    + ", ".join(map(str, sorted(taken)))
                    + ")",
                    hint=f"Insert into it, or create a new version with version={max(taken) + 1} "
                    f"(SQL: CREATE FEATURE GROUP {name} VERSION {max(taken) + 1} ...).",
                )
        fg = self.catalog.create_feature_group(
            project=self.project,
            name=name,
            version=version,
            features=[Feature(n, t.name, descriptions.get(n, "")) for n, t in columns.items()],
            primary_key=keys,
            event_time=event_time,
            description=description,
            online=online,
            metadata=metadata,
        )
        try:
            self.offline.create(fg)
        except BaseException:
            self.catalog.drop_feature_group(fg)
            raise
        handle = FeatureGroupHandle(self, fg)
        if table is not None and table.num_rows:
            try:
                handle.insert(table)
            except BaseException:
                # a create whose first commit fails leaves nothing behind
                self.drop_feature_group(handle.record)
                raise
        return handle

    def get_feature_group(self, name: str, version: int | str | None = None) -> FeatureGroupHandle:
        return FeatureGroupHandle(self, self.catalog.feature_group(self.project, name, version))

    def drop_feature_group(self, fg: FeatureGroup) -> None:
        """Drop one version: its rows, then its catalog entry."""
        if fg.kind == "cached":
            self.offline.drop(fg)
            self.online.drop(fg)
        self.catalog.drop_feature_group(fg)

    def feature_groups(self) -> list[FeatureGroup]:
        return self.catalog.feature_groups(self.project)

    def search(self, text: str) -> pa.Table:
        hits = self.catalog.search(text, self.project)
        return pa.Table.from_pylist(
            hits,
            schema=pa.schema(
                [
                    ("kind", pa.string()),
                    ("feature_group", pa.string()),
                    ("version", pa.int32()),
                    ("feature", pa.string()),
                    ("type", pa.string()),
                    ("description", pa.string()),
                ]
            ),
        )

    # connectors and on-demand feature groups -------------------------------

    def create_connector(
        self,
        name: str,
        type: str,
        options: Mapping[str, str] | None = None,
        *,
        description: str = "",
        check: bool = True,
    ) -> dict[str, Any]:
        """Register an external source (``type``: postgres, mysql, clickhouse,
        trino, files). Secrets are references (``password_env``,
        ``password_file``), never values. ``check`` reaches the source first."""
        from fsql import on_demand

        record = on_demand.create_connector(
            self, name, type, options or {}, description=description, check=check
        )
        return on_demand.describe_connector(record)

    def connectors(self) -> pa.Table:
        from fsql.connector_statements import connectors_table

        return connectors_table(self)

    def describe_connector(self, name: str) -> dict[str, Any]:
        from fsql import on_demand
        from fsql.catalog.connectors import get_connector

        info = on_demand.describe_connector(get_connector(self.catalog, self.project, name))
        info["feature_groups"] = sorted(
            {fg.name for fg in self.feature_groups() if fg.connector == name}
        )
        return info

    def alter_connector(
        self,
        name: str,
        options: Mapping[str, str] | None = None,
        *,
        description: str | None = None,
        check: bool = True,
    ) -> dict[str, Any]:
        """Change a connector's options (merged; an empty value removes one)
        or description; the source is reached again before anything changes."""
        from fsql import on_demand

        record = on_demand.alter_connector(
            self, name, options or {}, description=description, check=check
        )
        return on_demand.describe_connector(record)

    def drop_connector(self, name: str) -> None:
        from fsql.catalog.connectors import drop_connector, get_connector

        drop_connector(self.catalog, get_connector(self.catalog, self.project, name))

    def create_on_demand_feature_group(
        self,
        name: str,
        *,
        connector: str,
        query: Any,
        primary_key: str | Sequence[str],
        event_time: str | None = None,
        description: str = "",
        features: Mapping[str, str] | None = None,
        version: int | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> FeatureGroupHandle:
        """A feature group that is a query (PostgreSQL syntax) over a
        connector's source, computed when read; validated at the source now."""
        from fsql import on_demand

        fg = on_demand.create_feature_group(
            self,
            name,
            connector=connector,
            query=query,
            primary_key=primary_key,
            event_time=event_time,
            description=description,
            features=features,
            version=version,
            metadata=metadata,
        )
        return FeatureGroupHandle(self, fg)

    def federated_sql(
        self,
        text: str,
        *,
        spine: Any = None,
        offline_catalog: str | None = None,
        catalogs: Mapping[str, str] | None = None,
    ) -> str:
        """The Trino SQL (point-in-time join in window-function form) that
        federated mode runs for ``SELECT FEATURES ...`` (see
        :mod:`fsql.plan_window`)."""
        from fsql.plan import plan_features
        from fsql.plan_window import federated_sql
        from fsql.sql.dialect import parse
        from fsql.sql.nodes import SelectFeatures

        (node,) = parse(text)
        if not isinstance(node, SelectFeatures):
            raise InvalidParameter("federated mode runs SELECT FEATURES statements")
        plan = plan_features(self, node, spine=spine)
        return federated_sql(self, plan, offline_catalog=offline_catalog, catalogs=catalogs)

    def run_federated(
        self,
        text: str,
        *,
        connector: str,
        spine: Any = None,
        offline_catalog: str | None = None,
        catalogs: Mapping[str, str] | None = None,
    ) -> pa.Table:
        """Run ``SELECT FEATURES ...`` on Trino through a Trino connector."""
        from fsql.plan_window import run_federated

        return run_federated(
            self,
            text,
            connector=connector,
            spine=spine,
            offline_catalog=offline_catalog,
            catalogs=catalogs,
        )

    # SQL ----------------------------------------------------------------

    def sql(self, text: str, params: Sequence[Any] | None = None) -> pa.Table:
        """Run one or more FSQL statements; return the last one's result.
        ``params`` bind ``$1, $2, ...`` (as literals in the parsed tree)."""
        from fsql.execute import run

        return run(self, text, params)

    def get_features(
        self,
        features: Sequence[str],
        *,
        spine: Any = None,
        as_of: Any = None,
        system_time: Any = None,
        where: str | None = None,
    ) -> pa.Table:
        """Hopsworks-style feature retrieval.

        ``features``: names as in SELECT FEATURES (``amount``, ``fg.amount``,
        ``fg.*``). ``spine``: a pyarrow Table / DataFrame with key columns and
        the time column named by ``as_of`` (a column name); without a spine,
        ``as_of`` is a timestamp (latest values as of then). ``system_time``
        pins what the store held at that time.
        """
        from fsql.feature_query import get_features

        return get_features(
            self, features, spine=spine, as_of=as_of, system_time=system_time, where=where
        )

    # training datasets ----------------------------------------------------

    def create_training_dataset(
        self,
        name: str,
        query: str | None = None,
        *,
        data: Any = None,
        spine: Any = None,
        features: Sequence[str] | None = None,
        as_of: Any = None,
        version: int | None = None,
        description: str = "",
        format: str = "parquet",
        splits: str | Mapping[str, float] | None = None,
        seed: int | None = None,
        split_by: str | None = None,
        train_until: Any = None,
        validation_until: Any = None,
        split_key: str | Sequence[str] | None = None,
        label: str | Sequence[str] | None = None,
        location: str | Path | None = None,
    ) -> TrainingDataset:
        """Materialize ``query`` (FSQL text: ``SELECT FEATURES ...`` or a
        plain SELECT) or ``data`` (Arrow/pandas/polars; cannot be rebuilt) as
        a new immutable training dataset version. ``spine`` (Arrow/pandas/
        polars) is the spine of ``SELECT FEATURES ... AS OF time_column``; it
        is kept with the dataset. ``features`` (names) with ``as_of`` (the
        spine's time column) stand for ``SELECT FEATURES ... AS OF ...``.
        ``splits`` is ``'train:0.8,test:0.2'`` or ``{'train': 0.8, 'test': 0.2}``."""
        from fsql.training.dataset import create, features_query

        if features is not None:
            if query is not None:
                raise InvalidParameter("give a query or features (not both)")
            query = features_query(list(features), as_of, with_spine=spine is not None)

        if isinstance(splits, Mapping):
            splits = ",".join(f"{k}:{v}" for k, v in splits.items())
        options = {
            "format": format,
            "splits": splits,
            "seed": seed,
            "split_by": split_by,
            "train_until": train_until,
            "validation_until": validation_until,
            "split_key": _joined(split_key),
            "label": _joined(label),
            "location": str(location) if location is not None else None,
        }
        return create(
            self, name, query, data=data, spine=spine, version=version, description=description,
            options={k: v for k, v in options.items() if v is not None},
        )  # fmt: skip

    def get_training_dataset(self, name: str, version: int | None = None) -> TrainingDataset:
        from fsql.training.dataset import get

        return get(self, name, version)

    def training_datasets(self) -> pa.Table:
        """One row per training dataset version."""
        from fsql.training.dataset import listing

        return listing(self)

    def drop_training_dataset(self, name: str, version: int | None = None) -> int:
        """Drop one version (or every version); returns how many."""
        from fsql.training.dataset import drop

        return drop(self, name, version)

    def rebuild_training_dataset(
        self, name: str, version: int | None = None, *, location: str | None = None
    ) -> RebuildResult:
        """Re-run a version's recorded query at its recorded system time and
        compare with what was recorded (see :func:`fsql.training.dataset.rebuild`)."""
        from fsql.training.dataset import rebuild

        return rebuild(self, name, version, location=location)

    def lineage(self, name: str) -> pa.Table:
        """Training datasets that use a feature group or feature."""
        from fsql.training.dataset import lineage

        return lineage(self, name)


def _columns(
    schema: Mapping[str, str] | pa.Schema | None, table: pa.Table | None
) -> dict[str, FeatureType]:
    names: list[str] = []
    if isinstance(schema, pa.Schema):
        names = schema.names
    elif schema is None and table is not None:
        names = table.column_names
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DuplicateColumn(f'column "{twice[0]}" specified more than once')
    if isinstance(schema, pa.Schema):
        return {f.name: from_arrow(f.type) for f in schema}
    if schema is not None:
        return {n: from_name(t) for n, t in schema.items()}
    if table is None:
        raise InvalidParameter(
            "a feature group needs a schema or data to take it from",
            hint="Pass data=..., or schema={'column': 'type', ...}.",
        )
    return {f.name: from_arrow(f.type) for f in table.schema}


def _check_names(
    name: str,
    columns: Mapping[str, FeatureType],
    keys: Sequence[str],
    event_time: str | None,
    features: Mapping[str, str] | None,
) -> None:
    if not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise InvalidParameter(
            f"feature group name {name!r} is not valid",
            sqlstate="42602",
            hint="Use letters, digits and underscores, starting with a letter.",
        )
    if not keys:
        raise InvalidParameter("a feature group needs a primary key")
    for role, cols in (("primary key", keys), ("event time", [event_time] if event_time else [])):
        for c in cols:
            if c not in columns:
                raise UndefinedColumn(
                    f'{role} column "{c}" is not a column of "{name}"',
                    hint="Columns: " + ", ".join(columns),
                )
    if event_time and not columns[event_time].is_timestamp:
        raise DatatypeMismatch(
            f'event time column "{event_time}" has type {columns[event_time].name}; '
            "it must be a timestamp, timestamptz or date",
            sqlstate="42804",
        )
    for key in keys:
        t = columns[key]
        if t.name.endswith("[]") or t.name in ("real", "double precision", "json"):
            hint = None
            if t.name in ("real", "double precision"):
                hint = (
                    "A key is an integer, text, date or timestamp. pandas turns an integer "
                    "column with a missing value into float64: use the nullable 'Int64' dtype "
                    "(the missing keys are then reported as nulls), or drop those rows."
                )
            raise DatatypeMismatch(
                f'primary key column "{key}" has type {t.name}, which cannot be a key',
                sqlstate="42804",
                hint=hint,
            )
    unknown = [f for f in (features or {}) if f not in columns]
    if unknown:
        raise UndefinedColumn(
            "descriptions given for unknown features: " + ", ".join(unknown),
            hint="Columns: " + ", ".join(columns),
        )


def _joined(value: str | Sequence[str] | None) -> str | None:
    return value if value is None or isinstance(value, str) else ",".join(value)
