"""Immutable views of catalog rows handed to the other layers."""

from __future__ import annotations

from dataclasses import dataclass, field

from fsql.types import FeatureType, from_name


@dataclass(frozen=True)
class Feature:
    name: str
    type: str  # canonical type name, see fsql.types
    description: str = ""

    @property
    def ftype(self) -> FeatureType:
        return from_name(self.type)


@dataclass(frozen=True)
class FeatureGroup:
    id: int
    project: str
    name: str
    version: int
    kind: str  # 'cached' | 'on_demand'
    description: str
    primary_key: tuple[str, ...]
    event_time: str | None
    online: bool
    has_upserts: bool
    features: tuple[Feature, ...]
    created_at_us: int
    connector: str | None = None
    query: str | None = None
    metadata: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def qualified_name(self) -> str:
        return f"{self.name}_v{self.version}"

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> Feature | None:
        for f in self.features:
            if f.name == name:
                return f
        return None

    @property
    def value_features(self) -> tuple[Feature, ...]:
        """Features that are neither primary key nor event time."""
        skip = set(self.primary_key) | ({self.event_time} if self.event_time else set())
        return tuple(f for f in self.features if f.name not in skip)


@dataclass(frozen=True)
class Commit:
    id: int
    feature_group_id: int
    commit_time_us: int
    state: str
    row_count: int
