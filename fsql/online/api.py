"""The online store's face to the rest of fsql: the online methods of the
public :class:`fsql.api.Store` (a mixin) and the hooks it subscribes to
(the store's commits, drops and closing; the planner's key lookups). The
online service of a store lives in ``store.services['online']``, opened on
first use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fsql.online import state
from fsql.plan.features import key_lookup
from fsql.store import hooks
from fsql.store.core import StoreCore

if TYPE_CHECKING:
    import pyarrow as pa

    from fsql.catalog import Commit, FeatureGroup
    from fsql.online.consistency import ConsistencyReport
    from fsql.online.service import OnlineService

SERVICE = "online"


def service_of(store: StoreCore) -> OnlineService:
    """The store's online service (opened on first use)."""
    service = store.services.get(SERVICE)
    if service is None:
        from fsql.online.service import OnlineService

        service = OnlineService(store, store.config.get("online", "embedded"))
        store.services[SERVICE] = service
    return service  # type: ignore[no-any-return]


@hooks.after_commit.subscribe
def _after_commit(store: StoreCore, fg: FeatureGroup, commit: Commit) -> None:
    """Keep the online rows of online feature groups current."""
    service_of(store).after_commit(fg, commit)


@hooks.on_open.subscribe
def _on_open(store: StoreCore) -> None:
    """Recovery: groups whose online rows missed a commit (the process was
    killed between the offline commit and the online write) are marked
    stale; their next commit, first lookup or ``materialize`` rebuilds them."""
    state.mark_behind(store.catalog)


@hooks.after_drop.subscribe
def _after_drop(store: StoreCore, fg: FeatureGroup) -> None:
    service_of(store).drop(fg)


@hooks.on_close.subscribe
def _on_close(store: StoreCore) -> None:
    service = store.services.pop(SERVICE, None)
    if service is not None:
        service.close()


@key_lookup.subscribe
def _key_lookup(store: StoreCore, plan: Any) -> pa.Table | None:
    """Answer a pure key lookup from the online store (None: not served)."""
    return service_of(store).online_lookup(plan)


def online_sql(store: StoreCore, text: str, params: Any = None) -> pa.Table | None:
    """A ``SELECT FEATURES ... WHERE key = $1`` seen before, answered from
    its cached plan (None: run the statement normally). Its cache is by
    text, so it serves the project the service was opened for; a view of
    another project (:meth:`StoreCore.for_project`) plans every statement."""
    service = service_of(store)
    if service.store.project != store.project:
        return None
    return service.online_sql(text, params)


class OnlineMixin:
    @property
    def online(self) -> OnlineService:
        """The online store service (opened on first use)."""
        assert isinstance(self, StoreCore)
        return service_of(self)

    def after_commit(self, fg: FeatureGroup, commit: Commit) -> None:
        """The commit hook, by hand: bring the online rows up to ``commit``."""
        self.online.after_commit(fg, commit)

    def online_lookup(self, plan: Any) -> pa.Table | None:
        """Answer a pure key lookup plan from the online store (None: not
        served online)."""
        return self.online.online_lookup(plan)

    def online_sql(self, text: str, params: Any = None) -> pa.Table | None:
        """A ``SELECT FEATURES ... WHERE key = $1`` seen before, answered from
        its cached plan (None: run the statement normally)."""
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
