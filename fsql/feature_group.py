"""The Python handle of one feature-group version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from fsql.bind.sources import read_group
from fsql.catalog import Commit, FeatureGroup
from fsql.timeutil import to_micros

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


class FeatureGroupHandle:
    def __init__(self, store: StoreCore, record: FeatureGroup) -> None:
        self._store = store
        self.record = record

    def __repr__(self) -> str:
        return f"<FeatureGroup {self.name} v{self.version} ({len(self.record.features)} features)>"

    def _refresh(self) -> FeatureGroup:
        self.record = self._store.catalog.feature_group(
            self.record.project, self.record.name, self.record.version
        )
        return self.record

    name = property(lambda self: self.record.name)
    version = property(lambda self: self.record.version)
    primary_key = property(lambda self: list(self.record.primary_key))
    event_time = property(lambda self: self.record.event_time)
    description = property(lambda self: self.record.description)
    features = property(lambda self: list(self.record.features))

    def insert(self, data: Any) -> Commit:
        """Append (upsert) rows as one commit."""
        commit = self._store.commit(self._refresh(), data)
        self._refresh()
        return commit

    def read(self, *, system_time: datetime | str | int | None = None) -> pa.Table:
        """The rows (latest commit per key and event time), optionally as the
        store held them at ``system_time``."""
        fg = self._refresh()
        us = to_micros(system_time) if system_time is not None else None
        return read_group(self._store, fg, system_time_us=us)

    def commits(self) -> list[Commit]:
        return self._store.catalog.commits(self._refresh(), state="committed")

    def add_metadata(self, values: Mapping[str, str]) -> None:
        self._store.catalog.set_metadata(self._refresh(), values)

    def get_metadata(self, keys: Sequence[str] | None = None) -> dict[str, str]:
        return self._store.catalog.get_metadata(self._refresh(), keys)

    def remove_metadata(self, keys: Sequence[str]) -> list[str]:
        return self._store.catalog.remove_metadata(self._refresh(), keys)

    def describe(self) -> dict[str, Any]:
        fg = self._refresh()
        return {
            "name": fg.name,
            "version": fg.version,
            "kind": fg.kind,
            "description": fg.description,
            "primary_key": list(fg.primary_key),
            "event_time": fg.event_time,
            "online": fg.online,
            "features": [
                {"name": f.name, "type": f.type, "description": f.description} for f in fg.features
            ],
            "metadata": dict(fg.metadata),
            **({"connector": fg.connector, "query": fg.query} if fg.kind == "on_demand" else {}),
            "commits": len(self.commits()),
        }

    def drop(self) -> None:
        fg = self._refresh()
        self._store.drop_feature_group(fg)
