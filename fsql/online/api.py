"""The online-store methods of :class:`fsql.store.Store` (a mixin, so the
store module only wires it in)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from fsql.catalog import Commit, FeatureGroup
    from fsql.online.consistency import ConsistencyReport
    from fsql.online.service import OnlineService


class OnlineMixin:
    _online_url: str
    _online_service: OnlineService | None

    @property
    def online(self) -> OnlineService:
        """The online store service (opened on first use)."""
        service = getattr(self, "_online_service", None)
        if service is None:
            from fsql.online.service import OnlineService

            service = OnlineService(self, getattr(self, "_online_url", "embedded"))  # type: ignore[arg-type]
            self._online_service = service
        return service

    def _close_online(self) -> None:
        service = getattr(self, "_online_service", None)
        if service is not None:
            service.close()
            self._online_service = None

    def after_commit(self, fg: FeatureGroup, commit: Commit) -> None:
        """Commit hook: keep the online rows of online feature groups current."""
        self.online.after_commit(fg, commit)

    def online_lookup(self, plan: Any) -> pa.Table | None:
        """Planner hook: answer a pure key lookup from the online store."""
        return self.online.online_lookup(plan)

    def online_sql(self, text: str, params: Any = None) -> pa.Table | None:
        """Statement hook: a ``SELECT FEATURES ... WHERE key = $1`` seen before
        is answered from its cached plan (None: run the statement normally)."""
        return self.online.online_sql(text, params)

    def get_feature_vector(
        self, features: Any, entity: Mapping[str, Any], *, return_type: str = "list"
    ) -> Any:
        """The latest values of ``features`` (names, ``fg.name``, ``fg.*``, or
        a training dataset) for one entity (``{"customer_id": 42}``), in the
        requested order; None where the key is unknown. ``return_type``:
        ``list`` (default), ``dict`` or ``arrow``."""
        return self.online.get_feature_vector(features, entity, return_type=return_type)

    def get_feature_vectors(
        self, features: Any, entities: Any, *, return_type: str = "arrow"
    ) -> Any:
        """The batch form: one row per entity (list of dicts, dict of columns,
        Arrow table or DataFrame), in order, typed NULLs for unknown keys."""
        return self.online.get_feature_vectors(features, entities, return_type=return_type)

    def set_online(self, fg: Any, online: bool = True) -> None:
        """Serve a feature group online (materializes it now) or stop."""
        self.online.set_online(fg, online)

    def materialize(self, fg: Any, *, since: Any = None) -> dict[str, Any]:
        """Backfill/repair the online rows of ``fg`` from the offline store."""
        return self.online.materialize(fg, since=since)

    def check_consistency(self, fg: Any) -> ConsistencyReport:
        """Compare the online rows of ``fg`` with the offline latest per key."""
        return self.online.check_consistency(fg)
