"""The registry of relation kinds: what a table reference can mean.

A kind is a function ``(ctx, table) -> relation | None``: given a table
reference of a parsed statement it returns the engine relation that replaces
it, or None when the name is not of its kind. The binder
(:func:`fsql.bind.binder.bind`) offers each table reference to the kinds in
order; a kind registers with :func:`relation_kind`:

    @relation_kind("training_dataset", order=20)
    def bind_training_dataset(ctx, table): ...

``qualified`` kinds take ``schema.table`` names (``connector.table``); the
others take bare names (``fg``, ``fg_v2``, ``td``). Kinds of this layer
register in their own modules, listed in :mod:`fsql.bind.binder`; kinds of
the layers above (training datasets) register from there, loaded by
:mod:`fsql.plugins`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlglot import exp

from fsql.catalog import FeatureGroup

if TYPE_CHECKING:
    from fsql.store.core import StoreCore


@dataclass
class BindContext:
    """One binding pass: the store, the (copied) statement being bound,
    whose ``meta['fsql_inputs']`` carries Arrow inputs a kind hands to the
    engine, and the system time tables without their own are pinned to."""

    store: StoreCore
    statement: exp.Expr
    system_time_us: int | None = None
    _names: dict[str, FeatureGroup] | None = field(default=None, repr=False)

    def _groups(self) -> dict[str, FeatureGroup]:
        """Table name -> group: ``fg_vN`` each version, ``fg`` the latest
        (the catalog lists by version; read once per pass)."""
        if self._names is None:
            groups = self.store.feature_groups()
            self._names = {fg.qualified_name: fg for fg in groups}
            self._names.update({fg.name: fg for fg in groups})
        return self._names

    def group_named(self, name: str) -> FeatureGroup | None:
        return self._groups().get(name)

    def group_names(self) -> list[str]:
        return sorted(self._groups())


BindKind = Callable[[BindContext, exp.Table], exp.Expr | None]


@dataclass(frozen=True)
class RelationKind:
    name: str
    bind: BindKind
    qualified: bool
    order: int


KINDS: list[RelationKind] = []


def relation_kind(
    name: str, *, qualified: bool = False, order: int = 100
) -> Callable[[BindKind], BindKind]:
    """Register a relation kind (lower ``order`` is asked first)."""

    def register(fn: BindKind) -> BindKind:
        KINDS[:] = [k for k in KINDS if k.name != name]
        KINDS.append(RelationKind(name, fn, qualified, order))
        KINDS.sort(key=lambda k: k.order)
        return fn

    return register


def kinds(*, qualified: bool) -> list[RelationKind]:
    return [k for k in KINDS if k.qualified == qualified]
