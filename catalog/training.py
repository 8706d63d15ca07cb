"""Catalog records of training datasets: versions, lineage and statistics.

A version is registered in one transaction, after its files are written, so
a failed build leaves nothing in the catalog.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from fsql.catalog import models as m
from fsql.catalog.service import Catalog, now_us
from fsql.errors import DuplicateObject, UndefinedObject, did_you_mean


@dataclass(frozen=True)
class LineageEntry:
    column: str
    feature: str | None = None
    feature_group: str | None = None
    feature_group_version: int | None = None
    feature_group_id: int | None = None


@dataclass(frozen=True)
class TrainingDatasetRecord:
    id: int
    project: str
    name: str
    version: int
    description: str
    query: str | None
    system_time_us: int | None
    format: str
    options: dict[str, Any]
    location: str
    schema: dict[str, Any]
    row_count: int
    split_counts: dict[str, int]
    files: list[dict[str, Any]]
    checksum: str
    created_at_us: int
    lineage: tuple[LineageEntry, ...] = field(default=(), compare=False)

    @property
    def qualified_name(self) -> str:
        return f"{self.name}_v{self.version}"

    @property
    def splits(self) -> list[str]:
        return list(self.split_counts)

    @property
    def feature_groups(self) -> list[tuple[str, int]]:
        seen: dict[tuple[str, int], None] = {}
        for e in self.lineage:
            if e.feature_group is not None and e.feature_group_version is not None:
                seen[(e.feature_group, e.feature_group_version)] = None
        return list(seen)


def versions(catalog: Catalog, project: str, name: str) -> list[int]:
    with catalog.engine.connect() as conn:
        pid = catalog._project_id(conn, project)
        return sorted(
            conn.execute(
                select(m.training_datasets.c.version).where(
                    m.training_datasets.c.project_id == pid, m.training_datasets.c.name == name
                )
            ).scalars()
        )


def register(
    catalog: Catalog,
    *,
    project: str,
    name: str,
    version: int,
    description: str,
    query: str | None,
    system_time_us: int | None,
    format: str,
    options: Mapping[str, Any],
    location: str,
    schema: Mapping[str, Any],
    split_counts: Mapping[str, int],
    files: Sequence[Mapping[str, Any]],
    checksum: str,
    lineage: Sequence[LineageEntry],
    statistics: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> TrainingDatasetRecord:
    """Record a materialized version (one transaction)."""
    t = m.training_datasets
    try:
        with catalog.engine.begin() as conn:
            pid = catalog._project_id(conn, project)
            td_id = conn.execute(
                t.insert().values(
                    project_id=pid,
                    name=name,
                    version=version,
                    description=description or "",
                    query=query,
                    system_time_us=system_time_us,
                    format=format,
                    options=dict(options),
                    location=location,
                    schema=dict(schema),
                    row_count=int(sum(split_counts.values())),
                    split_counts=dict(split_counts),
                    files=[dict(f) for f in files],
                    checksum=checksum,
                    created_at_us=now_us(),
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            if lineage:
                conn.execute(
                    m.training_dataset_features.insert(),
                    [
                        {
                            "training_dataset_id": td_id,
                            "position": i,
                            "column_name": e.column,
                            "feature": e.feature,
                            "feature_group_id": e.feature_group_id,
                            "feature_group": e.feature_group,
                            "feature_group_version": e.feature_group_version,
                        }
                        for i, e in enumerate(lineage)
                    ],
                )
            rows = [
                {"training_dataset_id": td_id, "split": s, "column_name": c, "stats": dict(v)}
                for s, cols in statistics.items()
                for c, v in cols.items()
            ]
            if rows:
                conn.execute(m.training_dataset_statistics.insert(), rows)
    except IntegrityError:
        raise DuplicateObject(
            f'training dataset "{name}" version {version} already exists',
            hint="Leave VERSION out to create the next version.",
        ) from None
    return get(catalog, project, name, version)


def _load(conn, rows, project: str) -> list[TrainingDatasetRecord]:  # type: ignore[no-untyped-def]
    rows = list(rows)
    if not rows:
        return []
    ids = [r.id for r in rows]
    lineage: dict[int, list[LineageEntry]] = {i: [] for i in ids}
    f = m.training_dataset_features
    for r in conn.execute(select(f).where(f.c.training_dataset_id.in_(ids)).order_by(f.c.position)):
        lineage[r.training_dataset_id].append(
            LineageEntry(
                r.column_name,
                r.feature,
                r.feature_group,
                r.feature_group_version,
                r.feature_group_id,
            )
        )
    return [
        TrainingDatasetRecord(
            id=r.id,
            project=project,
            name=r.name,
            version=r.version,
            description=r.description,
            query=r.query,
            system_time_us=r.system_time_us,
            format=r.format,
            options=dict(r.options),
            location=r.location,
            schema=dict(r.schema),
            row_count=int(r.row_count),
            split_counts=dict(r.split_counts),
            files=list(r.files),
            checksum=r.checksum,
            created_at_us=r.created_at_us,
            lineage=tuple(lineage[r.id]),
        )
        for r in rows
    ]


def list_all(
    catalog: Catalog, project: str, name: str | None = None
) -> list[TrainingDatasetRecord]:
    t = m.training_datasets
    with catalog.engine.connect() as conn:
        pid = catalog._project_id(conn, project)
        q = select(t).where(t.c.project_id == pid)
        if name is not None:
            q = q.where(t.c.name == name)
        return _load(conn, conn.execute(q.order_by(t.c.name, t.c.version)), project)


def find(
    catalog: Catalog, project: str, name: str, version: int | str | None = None
) -> TrainingDatasetRecord | None:
    t = m.training_datasets
    with catalog.engine.connect() as conn:
        pid = catalog._project_id(conn, project)
        q = select(t).where(t.c.project_id == pid, t.c.name == name)
        if version is None or version == "latest":
            q = q.order_by(t.c.version.desc()).limit(1)
        else:
            q = q.where(t.c.version == int(version))
        found = _load(conn, conn.execute(q), project)
    return found[0] if found else None


def get(
    catalog: Catalog, project: str, name: str, version: int | str | None = None
) -> TrainingDatasetRecord:
    found = find(catalog, project, name, version)
    if found is not None:
        return found
    have = versions(catalog, project, name)
    if have:
        raise UndefinedObject(
            f'training dataset "{name}" has no version {version}',
            hint="Versions: " + ", ".join(str(v) for v in have),
        )
    names = sorted({r.name for r in list_all(catalog, project)})
    raise UndefinedObject(
        f'training dataset "{name}" does not exist', hint=did_you_mean(name, names)
    )


def remove(catalog: Catalog, record: TrainingDatasetRecord) -> None:
    with catalog.engine.begin() as conn:
        for table in (m.training_dataset_statistics, m.training_dataset_features):
            conn.execute(delete(table).where(table.c.training_dataset_id == record.id))
        conn.execute(delete(m.training_datasets).where(m.training_datasets.c.id == record.id))


def statistics(
    catalog: Catalog, record: TrainingDatasetRecord
) -> dict[str, dict[str, dict[str, Any]]]:
    s = m.training_dataset_statistics
    out: dict[str, dict[str, dict[str, Any]]] = {}
    with catalog.engine.connect() as conn:
        for r in conn.execute(
            select(s).where(s.c.training_dataset_id == record.id).order_by(s.c.id)
        ):
            out.setdefault(r.split, {})[r.column_name] = dict(r.stats)
    return out


def lineage(
    catalog: Catalog,
    project: str,
    *,
    feature_group: str | None = None,
    feature_group_version: int | None = None,
    feature: str | None = None,
) -> list[tuple[TrainingDatasetRecord, LineageEntry]]:
    """(training dataset version, column) pairs that use a feature group
    (optionally one version of it) and/or a feature."""
    hits = []
    for record in list_all(catalog, project):
        for e in record.lineage:
            if feature_group is not None and e.feature_group != feature_group:
                continue
            if (
                feature_group_version is not None
                and e.feature_group_version != feature_group_version
            ):
                continue
            if feature is not None and e.feature != feature:
                continue
            if e.feature_group is None and feature is None:
                continue
            hits.append((record, e))
    return hits
