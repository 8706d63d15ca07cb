"""The store core: one folder's catalog, offline store and engine, and the
feature-group life cycle (create, commit, drop) with its hooks.

Every layer above works on a :class:`StoreCore`; the public Python surface
(:class:`fsql.api.Store`, what :func:`fsql.connect` returns) adds SQL,
feature retrieval, connectors, training datasets and the online store on
top of it. The core announces its opening, commits, drops and closing
through :mod:`fsql.store.hooks` and never imports the layers that subscribe.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from fsql.catalog import Catalog, Commit, Feature, FeatureGroup
from fsql.catalog.service import DEFAULT_PROJECT
from fsql.connectors.engine import Engine
from fsql.errors import DuplicateObject, FeatureNotSupported, InvalidParameter, UndefinedObject
from fsql.store import hooks
from fsql.store.lock import StoreLock
from fsql.store.offline import OfflineStore
from fsql.store.schema import check_definition, columns_of
from fsql.tables import as_arrow

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


class StoreCore:
    """The catalog, the offline store and the engine behind one folder."""

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
        self.config = self._config(offline, catalog, online)
        # per-store state of the layers above (the online service, ...), by name
        self.services: dict[str, Any] = {}
        # what this store may reach (fsql.store.paths; None: the process
        # owner's own files, as embedded in Python); a server narrows them
        self.read_roots: list[str] | None = None
        self.write_roots: list[str] | None = None
        self.endpoints: list[str] | None = None  # remote hosts (S3, URLs) it may reach
        # the engine's memory limit for one user query, in bytes (None: none)
        self.query_memory_limit: int | None = None
        self.project = project
        self._lock: StoreLock | None = None
        if self.config["offline"] == "chdb":
            self._lock = StoreLock(self.path)
            self._lock.acquire()
        try:
            catalog_url = self.config["catalog"]
            if catalog_url == "sqlite":
                catalog_url = f"sqlite:///{self.path / 'catalog.sqlite'}"
            self.catalog = Catalog(catalog_url)
            self.catalog.ensure_project(project)
            self.engine = _open_engine(self.config["offline"], self.path)
            self.offline = OfflineStore(self.engine, self.catalog)
            self.offline.ensure_database(project)
            self.offline.recover()
            hooks.on_open(self)  # the layers above recover their part
        except BaseException:
            self.close()
            raise
        # only a store that opened (and, embedded, is ours) records its settings:
        # a second process or a bad URL must not rewrite another's fsql.json
        self._save_config(self.config)
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
        hooks.on_close(self)
        for part in ("engine", "catalog"):
            obj = getattr(self, part, None)
            if obj is not None:
                obj.close()
                setattr(self, part, None)
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._closed = True

    def for_project(self, project: str) -> StoreCore:
        """The same store seen from another project (a server session's
        database): catalog, engine, offline tables and services are shared,
        names resolve in ``project``. 3D000 for a project that does not
        exist. Close the store itself, never a view."""
        if project == self.project:
            return self
        views: dict[str, StoreCore] = self.__dict__.setdefault("_views", {})
        view = views.get(project)
        if view is None:
            if project not in self.catalog.projects():
                raise UndefinedObject(f'database "{project}" does not exist', sqlstate="3D000")
            self.offline.ensure_database(project)
            view = copy.copy(self)
            view.project = project
            views[project] = view
        return view

    # feature groups -----------------------------------------------------

    def feature_groups(self) -> list[FeatureGroup]:
        return self.catalog.feature_groups(self.project)

    def feature_group(self, name: str, version: int | str | None = None) -> FeatureGroup:
        return self.catalog.feature_group(self.project, name, version)

    def create_group(
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
    ) -> FeatureGroup:
        """Create a cached feature group; ``data`` (optional) is its first
        commit. A create whose first commit fails leaves nothing behind."""
        keys = [primary_key] if isinstance(primary_key, str) else list(primary_key)
        table = as_arrow(data) if data is not None else None
        columns = columns_of(schema, table)
        check_definition(name, columns, keys, event_time, features)
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
        if table is not None and table.num_rows:
            try:
                self.commit(fg, table)
            except BaseException:
                self.drop_feature_group(self._current(fg))
                raise
        return self._current(fg)

    def commit(self, fg: FeatureGroup, data: Any) -> Commit:
        """Append (upsert) rows to a cached feature group as one commit, then
        announce it (``hooks.after_commit``).

        Commits of one group are serialized in this process, the
        announcement included: subscribers (the online store) see the
        commits of a group one at a time, in commit order."""
        table = as_arrow(data)
        with self.offline.group_lock(fg):
            fg = self._current(fg)
            if fg.kind != "cached":
                raise FeatureNotSupported(
                    f'feature group "{fg.name}" is on-demand; it has no rows to insert'
                )
            commit = self.offline.insert(fg, table)
            hooks.after_commit(self, self._current(fg), commit)
        return commit

    def drop_feature_group(self, fg: FeatureGroup) -> None:
        """Drop one version: its rows, then its catalog entry."""
        if fg.kind == "cached":
            self.offline.drop(fg)
            hooks.after_drop(self, fg)
        self.catalog.drop_feature_group(fg)

    def _current(self, fg: FeatureGroup) -> FeatureGroup:
        """The catalog's record of ``fg`` now (flags such as ``has_upserts``
        change with commits)."""
        return self.catalog.feature_group(fg.project, fg.name, fg.version)

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
