"""The catalog service: every read and write of fsql metadata goes through here."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Engine, and_, create_engine, delete, event, func, select, update
from sqlalchemy.exc import IntegrityError

from fsql.catalog import models as m
from fsql.catalog.migrations import migrate
from fsql.catalog.records import Commit, Feature, FeatureGroup
from fsql.errors import DuplicateObject, InvalidParameter, UndefinedObject, did_you_mean

DEFAULT_PROJECT = "default"


def now_us() -> int:
    return time.time_ns() // 1000


class Catalog:
    """Metadata for one store. ``url`` is any SQLAlchemy URL (SQLite file or
    PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":

            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.close()

        # Feature-group listings are read on every query plan; cache them until
        # the next committed write. Only where this process is the sole writer
        # (the embedded SQLite catalog is guarded by the store lock).
        self._cache: dict[str, list[FeatureGroup]] = {}
        self._cacheable = self.engine.dialect.name == "sqlite"
        event.listen(self.engine, "commit", lambda _conn: self._cache.clear())
        migrate(self.engine)
        self.ensure_project(DEFAULT_PROJECT)
        self._last_commit_us = 0
        # commit times are handed out one at a time in this process (threads
        # committing to different groups must not read the same maximum)
        self._commit_time_lock = threading.Lock()

    def close(self) -> None:
        self.engine.dispose()

    # projects -----------------------------------------------------------

    def ensure_project(self, name: str) -> int:
        with self.engine.begin() as conn:
            pid = conn.execute(select(m.projects.c.id).where(m.projects.c.name == name)).scalar()
            if pid is None:
                pid = conn.execute(
                    m.projects.insert().values(name=name, description="", created_at_us=now_us())
                ).inserted_primary_key[0]  # type: ignore[index]
            return int(pid)

    def projects(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(select(m.projects.c.name).order_by(m.projects.c.name)).scalars()
            )

    def _project_id(self, conn, project: str) -> int:  # type: ignore[no-untyped-def]
        pid = conn.execute(select(m.projects.c.id).where(m.projects.c.name == project)).scalar()
        if pid is None:
            raise UndefinedObject(
                f'project "{project}" does not exist',
                sqlstate="3D000",
                hint=did_you_mean(project, self.projects()),
            )
        return int(pid)

    # feature groups -----------------------------------------------------

    def create_feature_group(
        self,
        *,
        project: str,
        name: str,
        features: Sequence[Feature],
        primary_key: Sequence[str],
        event_time: str | None,
        description: str = "",
        version: int | None = None,
        kind: str = "cached",
        online: bool = False,
        connector: str | None = None,
        query: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> FeatureGroup:
        with self.engine.begin() as conn:
            pid = self._project_id(conn, project)
            existing = list(
                conn.execute(
                    select(m.feature_groups.c.version).where(
                        m.feature_groups.c.project_id == pid, m.feature_groups.c.name == name
                    )
                ).scalars()
            )
            if version is None:
                version = max(existing, default=0) + 1
            if version in existing:
                raise DuplicateObject(
                    f'feature group "{name}" version {version} already exists',
                    hint="Insert into it, drop it first, or create a new version.",
                )
            if version < 1:
                raise InvalidParameter(f"version must be 1 or more, got {version}")
            try:
                fg_id = conn.execute(
                    m.feature_groups.insert().values(
                        project_id=pid,
                        name=name,
                        version=version,
                        kind=kind,
                        description=description or "",
                        primary_key=list(primary_key),
                        event_time=event_time,
                        online=online,
                        has_upserts=False,
                        connector=connector,
                        query=query,
                        created_at_us=now_us(),
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            except IntegrityError:
                raise DuplicateObject(
                    f'feature group "{name}" version {version} already exists'
                ) from None
            conn.execute(
                m.features.insert(),
                [
                    {
                        "feature_group_id": fg_id,
                        "position": i,
                        "name": f.name,
                        "type": f.type,
                        "description": f.description or "",
                    }
                    for i, f in enumerate(features)
                ],
            )
            if metadata:
                conn.execute(
                    m.fg_metadata.insert(),
                    [
                        {"feature_group_id": fg_id, "key": k, "value": v}
                        for k, v in metadata.items()
                    ],
                )
        return self.feature_group(project, name, version)

    def _load(self, conn, rows: Iterable) -> list[FeatureGroup]:  # type: ignore[no-untyped-def]
        rows = list(rows)
        if not rows:
            return []
        ids = [r.id for r in rows]
        feats: dict[int, list[Feature]] = {i: [] for i in ids}
        for f in conn.execute(
            select(m.features)
            .where(m.features.c.feature_group_id.in_(ids))
            .order_by(m.features.c.feature_group_id, m.features.c.position)
        ):
            feats[f.feature_group_id].append(Feature(f.name, f.type, f.description))
        meta: dict[int, dict[str, str]] = {i: {} for i in ids}
        for r in conn.execute(
            select(m.fg_metadata).where(m.fg_metadata.c.feature_group_id.in_(ids))
        ):
            meta[r.feature_group_id][r.key] = r.value
        projects = {r[0]: r[1] for r in conn.execute(select(m.projects.c.id, m.projects.c.name))}
        return [
            FeatureGroup(
                id=r.id,
                project=projects[r.project_id],
                name=r.name,
                version=r.version,
                kind=r.kind,
                description=r.description,
                primary_key=tuple(r.primary_key),
                event_time=r.event_time,
                online=bool(r.online),
                has_upserts=bool(r.has_upserts),
                features=tuple(feats[r.id]),
                created_at_us=r.created_at_us,
                connector=r.connector,
                query=r.query,
                metadata=meta[r.id],
            )
            for r in rows
        ]

    def feature_groups(self, project: str = DEFAULT_PROJECT) -> list[FeatureGroup]:
        """Every version of every feature group in a project."""
        cached = self._cache.get(project)
        if cached is not None:
            return list(cached)
        found = self._feature_groups(project)
        if self._cacheable:
            self._cache[project] = found
        return list(found)

    def _feature_groups(self, project: str) -> list[FeatureGroup]:
        with self.engine.connect() as conn:
            pid = self._project_id(conn, project)
            rows = conn.execute(
                select(m.feature_groups)
                .where(m.feature_groups.c.project_id == pid)
                .order_by(m.feature_groups.c.name, m.feature_groups.c.version)
            )
            return self._load(conn, rows)

    def feature_group(
        self, project: str, name: str, version: int | str | None = None
    ) -> FeatureGroup:
        """One feature group version; ``None`` or ``'latest'`` is the highest."""
        with self.engine.connect() as conn:
            pid = self._project_id(conn, project)
            q = select(m.feature_groups).where(
                m.feature_groups.c.project_id == pid, m.feature_groups.c.name == name
            )
            if version is None or version == "latest":
                q = q.order_by(m.feature_groups.c.version.desc()).limit(1)
            else:
                q = q.where(m.feature_groups.c.version == int(version))
            found = self._load(conn, conn.execute(q))
        if found:
            return found[0]
        names = sorted({fg.name for fg in self.feature_groups(project)})
        if name in names:
            raise UndefinedObject(
                f'feature group "{name}" has no version {version}',
                hint="Versions: "
                + ", ".join(
                    str(fg.version) for fg in self.feature_groups(project) if fg.name == name
                ),
            )
        raise UndefinedObject(
            f'feature group "{name}" does not exist', hint=did_you_mean(name, names)
        )

    def drop_feature_group(self, fg: FeatureGroup) -> None:
        with self.engine.begin() as conn:
            for table in (m.commits, m.fg_metadata, m.features):
                conn.execute(delete(table).where(table.c.feature_group_id == fg.id))
            conn.execute(delete(m.feature_groups).where(m.feature_groups.c.id == fg.id))

    def set_online(self, fg: FeatureGroup, online: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(m.feature_groups).where(m.feature_groups.c.id == fg.id).values(online=online)
            )

    def set_description(self, fg: FeatureGroup, description: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(m.feature_groups)
                .where(m.feature_groups.c.id == fg.id)
                .values(description=description)
            )

    def mark_upserts(self, fg_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(m.feature_groups)
                .where(m.feature_groups.c.id == fg_id)
                .values(has_upserts=True)
            )

    # metadata -----------------------------------------------------------

    def set_metadata(self, fg: FeatureGroup, values: Mapping[str, str]) -> None:
        with self.engine.begin() as conn:
            for key, value in values.items():
                if not isinstance(key, str) or not key:
                    raise InvalidParameter(f"metadata keys must be non-empty strings, got {key!r}")
                conn.execute(
                    delete(m.fg_metadata).where(
                        m.fg_metadata.c.feature_group_id == fg.id, m.fg_metadata.c.key == key
                    )
                )
                conn.execute(
                    m.fg_metadata.insert().values(feature_group_id=fg.id, key=key, value=str(value))
                )

    def get_metadata(self, fg: FeatureGroup, keys: Sequence[str] | None = None) -> dict[str, str]:
        with self.engine.connect() as conn:
            q = select(m.fg_metadata.c.key, m.fg_metadata.c.value).where(
                m.fg_metadata.c.feature_group_id == fg.id
            )
            if keys is not None:
                q = q.where(m.fg_metadata.c.key.in_(list(keys)))
            return {r[0]: r[1] for r in conn.execute(q.order_by(m.fg_metadata.c.key))}

    def remove_metadata(self, fg: FeatureGroup, keys: Sequence[str]) -> list[str]:
        """Remove keys; return the ones that were not there."""
        present = self.get_metadata(fg, keys)
        with self.engine.begin() as conn:
            conn.execute(
                delete(m.fg_metadata).where(
                    m.fg_metadata.c.feature_group_id == fg.id, m.fg_metadata.c.key.in_(list(keys))
                )
            )
        return [k for k in keys if k not in present]

    # search -------------------------------------------------------------

    def search(self, text: str, project: str = DEFAULT_PROJECT) -> list[dict[str, object]]:
        """Keyword search over names, descriptions and metadata.

        Every whitespace-separated word must match (case-insensitively) the
        name, description, or a metadata key or value of the hit. Hits are
        feature groups (latest version) and their features.
        """
        words = [w.lower() for w in text.split() if w]
        if not words:
            raise InvalidParameter("search needs at least one word")
        latest: dict[str, FeatureGroup] = {}
        for fg in self.feature_groups(project):
            latest[fg.name] = fg
        hits: list[dict[str, object]] = []
        for fg in latest.values():
            meta_text = " ".join(f"{k} {v}" for k, v in fg.metadata.items())
            fg_text = f"{fg.name} {fg.description} {meta_text}".lower()
            if all(w in fg_text for w in words):
                hits.append(
                    {
                        "kind": "feature_group",
                        "feature_group": fg.name,
                        "version": fg.version,
                        "feature": None,
                        "type": None,
                        "description": fg.description,
                    }
                )
            for f in fg.features:
                f_text = f"{f.name} {f.description} {fg.name} {meta_text}".lower()
                if all(w in f_text for w in words):
                    hits.append(
                        {
                            "kind": "feature",
                            "feature_group": fg.name,
                            "version": fg.version,
                            "feature": f.name,
                            "type": f.type,
                            "description": f.description,
                        }
                    )
        return hits

    # commits ------------------------------------------------------------

    def begin_commit(self, fg: FeatureGroup) -> Commit:
        """Register a pending commit with a strictly increasing commit time
        (and id: commit ids order the commits of a group, a later id wins)."""
        with self._commit_time_lock, self.engine.begin() as conn:
            last = conn.execute(select(func.max(m.commits.c.commit_time_us))).scalar() or 0
            t = max(now_us(), last + 1, self._last_commit_us + 1)
            self._last_commit_us = t
            cid = conn.execute(
                m.commits.insert().values(
                    feature_group_id=fg.id, commit_time_us=t, state="pending", row_count=0
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        return Commit(int(cid), fg.id, t, "pending", 0)

    def finish_commit(self, commit: Commit, row_count: int, *, upserts: bool) -> Commit:
        with self.engine.begin() as conn:
            conn.execute(
                update(m.commits)
                .where(m.commits.c.id == commit.id)
                .values(state="committed", row_count=row_count)
            )
            if upserts:
                conn.execute(
                    update(m.feature_groups)
                    .where(m.feature_groups.c.id == commit.feature_group_id)
                    .values(has_upserts=True)
                )
        return Commit(
            commit.id, commit.feature_group_id, commit.commit_time_us, "committed", row_count
        )

    def abort_commit(self, commit: Commit) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(m.commits).where(m.commits.c.id == commit.id).values(state="aborted")
            )

    def commits(
        self,
        fg: FeatureGroup | None = None,
        state: str | None = None,
        *,
        after_id: int | None = None,
    ) -> list[Commit]:
        """Commits in id order: of one group, in one state, with an id above
        ``after_id``."""
        with self.engine.connect() as conn:
            q = select(m.commits).order_by(m.commits.c.id)
            conds = []
            if fg is not None:
                conds.append(m.commits.c.feature_group_id == fg.id)
            if state is not None:
                conds.append(m.commits.c.state == state)
            if after_id is not None:
                conds.append(m.commits.c.id > after_id)
            if conds:
                q = q.where(and_(*conds))
            return [
                Commit(r.id, r.feature_group_id, r.commit_time_us, r.state, r.row_count)
                for r in conn.execute(q)
            ]

    def feature_group_by_id(self, fg_id: int) -> FeatureGroup | None:
        with self.engine.connect() as conn:
            found = self._load(
                conn, conn.execute(select(m.feature_groups).where(m.feature_groups.c.id == fg_id))
            )
        return found[0] if found else None

    def find_features(self, name: str, project: str = DEFAULT_PROJECT) -> list[FeatureGroup]:
        """Latest versions of the feature groups that have a feature ``name``."""
        latest: dict[str, FeatureGroup] = {}
        for fg in self.feature_groups(project):
            latest[fg.name] = fg
        return [fg for fg in latest.values() if fg.feature(name) is not None]
