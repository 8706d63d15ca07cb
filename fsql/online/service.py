"""Serving: feature vectors from the online store.

``get_feature_vector(features, {"customer_id": 42})`` and the batch form
resolve the feature names once (a plan, cached until the catalog changes),
then do one lookup per feature group: a dict probe in the embedded store, one
round trip per group on a server backend. Values come back in the requested
order; an unknown key gives NULLs (typed, in the Arrow form).

Every commit of an online feature group is applied here (``after_commit``);
if the online store fails, the commit stays (it is durable offline), the
group is marked stale in the catalog, and the error says so: the next commit,
``fsql materialize`` or the first lookup after a toggle repairs it. A commit
whose process was killed before its online write is found when a store
opens (:func:`fsql.online.state.mark_behind`) or by the group's next commit
(:meth:`OnlineService._missed`), and the group is rematerialized. The
exception is the first commit of a ``create_feature_group(..., data)``: the
store rolls the create back, and the error then says that nothing was kept
(:meth:`OnlineService.drop` sees the rollback).
"""

from __future__ import annotations

import dataclasses
import re
import sys
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import event

from fsql.catalog import Commit, FeatureGroup
from fsql.errors import (
    AmbiguousColumn,
    DatatypeMismatch,
    FsqlError,
    InvalidParameter,
    UndefinedColumn,
    UndefinedObject,
    did_you_mean,
)
from fsql.online import state as st
from fsql.online.base import (
    Codec,
    NotOnline,
    OnlineCommitFailed,
    OnlineStore,
    OnlineStoreUnavailable,
    column_to_prims,
    latest_per_key,
    open_online_store,
    to_array,
)
from fsql.online.materialize import encode_rows, last_commit, offline_latest
from fsql.tables import as_arrow
from fsql.timeutil import to_micros
from fsql.types import FeatureType

if TYPE_CHECKING:
    from fsql.online.consistency import ConsistencyReport
    from fsql.store.core import StoreCore

_VERSIONED = re.compile(r"^(.+)_v(\d+)$")


@dataclass
class _Group:
    fg: FeatureGroup
    codec: Codec
    read: Callable[[Any], tuple[Any, ...] | None]
    key_names: list[str]
    norms: list[Callable[[Any], Any]]
    single: bool

    def prim(self, entity: Mapping[str, Any]) -> Any:
        if self.single:
            name = self.key_names[0]
            try:
                v = entity[name]
            except (KeyError, TypeError):
                raise self.missing(entity) from None
            if v is None:
                raise self.null(name)
            return self.norms[0](v)
        out = []
        for name, norm in zip(self.key_names, self.norms, strict=True):
            try:
                v = entity[name]
            except (KeyError, TypeError):
                raise self.missing(entity) from None
            if v is None:
                raise self.null(name)
            out.append(norm(v))
        return tuple(out)

    def missing(self, entity: Any) -> FsqlError:
        given = list(entity) if isinstance(entity, Mapping) else []
        absent = [k for k in self.key_names if k not in given]
        return InvalidParameter(
            f"missing primary key {', '.join(repr(k) for k in absent) or self.key_names!r} "
            f'of feature group "{self.fg.name}"',
            sqlstate="22023",
            hint=f"Pass every primary key column: {', '.join(self.key_names)}"
            + (f" (given: {', '.join(map(str, given))})." if given else "."),
        )

    def null(self, name: str) -> FsqlError:
        return InvalidParameter(f'primary key "{name}" is NULL', sqlstate="22004")


@dataclass
class VectorPlan:
    names: list[str]
    types: list[FeatureType]
    groups: list[_Group]
    # per output column: (group index, index into the value tuple or key, is_key)
    slots: list[tuple[int, int, bool]]


class OnlineService:
    def __init__(self, store: StoreCore, url: str) -> None:
        self.store = store
        self.url = url
        self._backend: OnlineStore | None = None
        self._batched = False
        self._codecs: dict[int, Codec] = {}
        self._plans: dict[Any, VectorPlan] = {}
        self._statements: dict[str, Any] = {}  # fsql.online.prepared
        # the last commit whose online write failed: (feature group id, error)
        self._failed_commit: tuple[int, OnlineCommitFailed] | None = None
        self.generation = 0  # bumped whenever cached plans are dropped (catalog changes)
        self._lock = threading.RLock()
        self._engine = store.catalog.engine
        event.listen(self._engine, "after_cursor_execute", self._on_catalog_sql)

    # lifecycle --------------------------------------------------------------

    @property
    def backend(self) -> OnlineStore:
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = open_online_store(self.url, self.store.path)
                    self._batched = self._backend.batched_reads
        return self._backend

    def close(self) -> None:
        try:
            event.remove(self._engine, "after_cursor_execute", self._on_catalog_sql)
        except Exception:
            pass
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        self._plans.clear()
        self.generation += 1

    def _on_catalog_sql(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # any change to feature groups (new version, online flag, drop)
        # invalidates cached plans
        head = statement.lstrip()[:6].upper()
        if head in ("INSERT", "UPDATE", "DELETE") and (
            "feature_groups" in statement or "features" in statement
        ):
            self._plans.clear()
            self._statements.clear()
            self.generation += 1

    # feature groups -----------------------------------------------------------

    def feature_group(self, fg: Any, version: int | None = None) -> FeatureGroup:
        """A fresh record from a name, a record or a handle."""
        catalog = self.store.catalog
        if isinstance(fg, str):
            return catalog.feature_group(self.store.project, fg, version)
        record = getattr(fg, "record", fg)
        if isinstance(record, FeatureGroup):
            fresh = catalog.feature_group_by_id(record.id)
            if fresh is None:
                raise UndefinedObject(f'feature group "{record.name}" does not exist')
            return fresh
        raise InvalidParameter(f"not a feature group: {fg!r}")

    def codec(self, fg: FeatureGroup) -> Codec:
        codec = self._codecs.get(fg.id)
        if codec is None:
            codec = self._codecs[fg.id] = Codec(fg)
        return codec

    def state(self, fg: FeatureGroup) -> st.OnlineState | None:
        """The group's online state. ``ok`` only when the online store holds
        the last committed commit: a state recorded as ``ok`` that is behind
        (a commit whose online write has not happened, or never will) is
        reported ``stale``."""
        found = st.get(self.store.catalog, fg.id)
        if found is not None and found.status == st.OK:
            last_id, _ = last_commit(self, fg)
            if last_id is not None and (
                found.last_commit_id is None or found.last_commit_id < last_id
            ):
                return dataclasses.replace(
                    found, status=st.STALE, error=st.behind_error(found.last_commit_id, last_id)
                )
        return found

    def _repair_if_needed(self, fg: FeatureGroup) -> None:
        """Materialize a group before serving it when it never was, was
        turned online by another path, or was found behind the offline
        store when the store opened (a killed commit). A group stale after
        a failed online write keeps serving its older rows until the next
        commit or ``materialize`` (the server may still be down)."""
        state = st.get(self.store.catalog, fg.id)
        if state is None or (
            state.status != st.OK
            and (state.error == "committed while offline" or st.is_behind(state))
        ):
            self._materialize_full(fg)

    def _require_online(self, fg: FeatureGroup) -> None:
        if fg.kind != "cached":
            raise NotOnline(
                f'feature group "{fg.name}" is on-demand; only cached feature groups can be online'
            )
        if not fg.online:
            raise NotOnline(
                f'feature group "{fg.name}" version {fg.version} is not online',
                hint=f"ALTER FEATURE GROUP {fg.name} SET ONLINE (or store.set_online"
                f"({fg.name!r})) materializes it into the online store.",
            )

    # writes -------------------------------------------------------------------

    def after_commit(self, fg: FeatureGroup, commit: Commit) -> None:
        """Apply one commit to the online store (the commit hook)."""
        if fg.kind != "cached":
            return
        catalog = self.store.catalog
        state = st.get(catalog, fg.id)
        if not fg.online:
            if state is not None and state.status == st.OK:
                st.put(catalog, fg.id, st.STALE, keep_commit=True, error="committed while offline")
            return
        try:
            if state is None or state.status != st.OK or self._missed(fg, state, commit):
                self._materialize_full(fg)
                return
            codec = self.codec(fg)
            rows = encode_rows(codec, offline_latest(self, fg, commit_id=commit.id))
            self.backend.write(codec.table, latest_per_key(rows), codec)
            applied = max(commit.id, state.last_commit_id or 0)
            st.put(catalog, fg.id, st.OK, last_commit_id=applied)
        except Exception as e:
            message = e.message if isinstance(e, FsqlError) else str(e)
            st.put(catalog, fg.id, st.STALE, keep_commit=True, error=message)
            err = OnlineCommitFailed.of(
                e,
                f'commit {commit.id} of feature group "{fg.name}" is stored offline, but the '
                f"online store was not updated: {message}",
                hint=f"Online lookups of {fg.name} serve older values until `fsql materialize "
                f"{fg.name}` (or the next commit) repairs them; `fsql check-consistency "
                f"{fg.name}` lists the differences.",
                feature_group=fg,
                commit_id=commit.id,
                reason=message,
            )
            self._failed_commit = (fg.id, err)
            raise err from e

    def _missed(self, fg: FeatureGroup, state: st.OnlineState, commit: Commit) -> bool:
        """Whether a commit before ``commit`` and after the last one applied
        online is committed offline but never reached the online store (its
        process was killed in between): then ``commit`` alone would not
        bring the online rows up to date."""
        earlier = self.store.catalog.commits(fg, state="committed", after_id=state.last_commit_id)
        return any(c.id < commit.id for c in earlier)

    def _materialize_full(self, fg: FeatureGroup) -> int:
        codec = self.codec(fg)
        commit_id, commit_us = last_commit(self, fg)
        rows = []
        if commit_us is not None:
            rows = encode_rows(codec, offline_latest(self, fg, system_time_us=commit_us))
        self.backend.replace(codec.table, rows, codec)
        st.put(self.store.catalog, fg.id, st.OK, last_commit_id=commit_id)
        return len(rows)

    def materialize(self, fg: Any, *, since: Any = None) -> dict[str, Any]:
        """Backfill or repair the online rows of ``fg`` from the offline store:
        all of them, or (``since``) the keys written by commits after a time."""
        record = self.feature_group(fg)
        self._require_online(record)
        if since is None:
            n = self._materialize_full(record)
            return {
                "feature_group": record.name,
                "version": record.version,
                "mode": "full",
                "rows": n,
            }
        since_us = to_micros(since)
        codec = self.codec(record)
        commit_id, commit_us = last_commit(self, record)
        rows: list[Any] = []
        if commit_us is not None:
            rows = latest_per_key(
                encode_rows(
                    codec, offline_latest(self, record, since_us=since_us, system_time_us=commit_us)
                )
            )
            self.backend.write(codec.table, rows, codec)
        state = self.state(record)
        missed = [
            c
            for c in self.store.catalog.commits(record, state="committed")
            if state is None or state.last_commit_id is None or c.id > state.last_commit_id
        ]
        if state is not None and (
            state.status == st.OK or all(c.commit_time_us > since_us for c in missed)
        ):
            st.put(self.store.catalog, record.id, st.OK, last_commit_id=commit_id)
        return {
            "feature_group": record.name,
            "version": record.version,
            "mode": "since",
            "rows": len(rows),
        }

    def set_online(self, fg: Any, online: bool = True) -> None:
        """Turn serving on (materializes the group now) or off (drops its
        online rows)."""
        record = self.feature_group(fg)
        if record.kind != "cached":
            raise NotOnline(
                f'feature group "{record.name}" is on-demand; only cached feature groups '
                "can be online",
                sqlstate="0A000",
            )
        self.store.catalog.set_online(record, online)
        record = self.feature_group(record)
        if online:
            self._materialize_full(record)
        else:
            self.backend.drop(self.codec(record).table)
            st.clear(self.store.catalog, record.id)

    def drop(self, fg: FeatureGroup) -> None:
        """Remove a feature group's online rows (when it is dropped).

        Called while the error of a failed online write of ``fg`` is being
        handled, this is the rollback of a create whose first commit never
        reached the online store: the error is reworded to say so, and there
        is no warning about rows left behind (a failed write keeps none)."""
        failed = self._failed_commit
        rollback = failed is not None and failed[0] == fg.id and sys.exc_info()[1] is failed[1]
        if rollback:
            assert failed is not None
            self._failed_commit = None
            failed[1].rolled_back()
        if fg.online or st.get(self.store.catalog, fg.id) is not None:
            try:
                self.backend.drop(self.codec(fg).table)
            except OnlineStoreUnavailable as e:
                if not rollback:
                    # the group goes anyway; its online rows stay behind on the server
                    warnings.warn(
                        f'online rows of "{fg.name}" v{fg.version} were not dropped: {e.message}',
                        stacklevel=2,
                    )

    def warm(self) -> int:
        """Load every online group into the embedded store's memory now (a
        serving process calls this at start, so no request pays for it);
        returns the number of groups. A no-op for server backends."""
        n = 0
        for fg in self.store.catalog.feature_groups(self.store.project):
            if fg.kind == "cached" and fg.online:
                self._repair_if_needed(fg)
                self.backend.reader(self.codec(fg))
                n += 1
        return n

    def check_consistency(self, fg: Any) -> ConsistencyReport:
        from fsql.online.consistency import check

        record = self.feature_group(fg)
        self._require_online(record)
        return check(self, record)

    # planning -----------------------------------------------------------------

    def _resolve(self, item: Any) -> list[tuple[FeatureGroup, str, str]]:
        if not isinstance(item, str):
            fg, feature = getattr(item, "fg", None), getattr(item, "feature", None)
            if isinstance(fg, FeatureGroup) and isinstance(feature, str):
                return [(fg, feature, getattr(item, "alias", None) or feature)]
            if isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], FeatureGroup):
                return [item]
            raise InvalidParameter(f"not a feature name: {item!r}")
        name = item.strip()
        catalog, project = self.store.catalog, self.store.project
        if "." in name:
            table, feature = name.rsplit(".", 1)
            fg = self._group_named(table)
            if feature == "*":
                return [(fg, f.name, f.name) for f in fg.features if f.name not in fg.primary_key]
            if fg.feature(feature) is None:
                raise UndefinedColumn(
                    f'feature "{feature}" does not exist in feature group "{fg.name}"',
                    hint=did_you_mean(feature, fg.feature_names),
                )
            return [(fg, feature, feature)]
        found = catalog.find_features(name, project)
        if not found:
            every = {f for g in catalog.feature_groups(project) for f in g.feature_names}
            raise UndefinedColumn(
                f'feature "{name}" does not exist', hint=did_you_mean(name, sorted(every))
            )
        if len(found) > 1:
            raise AmbiguousColumn(
                f'feature "{name}" is ambiguous: ' + ", ".join(f"{g.name}.{name}" for g in found),
                hint="Qualify it with its feature group.",
            )
        return [(found[0], name, name)]

    def _group_named(self, table: str) -> FeatureGroup:
        catalog, project = self.store.catalog, self.store.project
        try:
            return catalog.feature_group(project, table)
        except UndefinedObject:
            m = _VERSIONED.match(table)
            if m is None:
                raise
            return catalog.feature_group(project, m.group(1), int(m.group(2)))

    def _feature_list(self, features: Any) -> list[Any]:
        if isinstance(features, str):
            return [features]
        if isinstance(features, Sequence):
            return list(features)
        td = getattr(features, "record", features)
        if hasattr(td, "lineage") and hasattr(td, "split_counts"):
            return self._training_dataset_features(td)
        # a training dataset (or anything that lists its features)
        for attr in ("feature_names", "features"):
            listed = getattr(features, attr, None)
            if callable(listed):
                listed = listed()
            if isinstance(listed, Sequence) and not isinstance(listed, str):
                return list(listed)
        raise InvalidParameter(
            f"cannot read features from {type(features).__name__}",
            hint="Pass a list of feature names or a training dataset.",
        )

    def _training_dataset_features(self, td: Any) -> list[Any]:
        """The features a training dataset was built from, at the feature-group
        versions it recorded (spine columns, keys, event times and labels are
        not served)."""
        from fsql.plan.features import plan_features
        from fsql.sql.dialect import parse
        from fsql.sql.nodes import SelectFeatures

        wanted: set[str] | None = None
        try:
            node = parse(td.query)[0] if td.query else None
            if isinstance(node, SelectFeatures):
                plan = plan_features(self.store, node)
                wanted = {r.alias for r in plan.features if r.fg is not None}
        except FsqlError:
            wanted = None
        labels = {c for c in str(td.options.get("label", "label")).split(",") if c}
        out: list[Any] = []
        for e in td.lineage:
            if e.feature_group_id is None or e.feature is None or e.column in labels:
                continue
            if wanted is not None and e.column not in wanted:
                continue
            fg = self.store.catalog.feature_group_by_id(e.feature_group_id)
            if fg is None:
                raise UndefinedObject(
                    f'feature group "{e.feature_group}" version {e.feature_group_version} of '
                    f'training dataset "{td.name}" no longer exists'
                )
            if e.feature in fg.primary_key or e.feature == fg.event_time:
                continue
            out.append((fg, e.feature, e.column))
        if not out:
            raise InvalidParameter(f'training dataset "{td.name}" has no features to serve')
        return out

    def plan(self, features: Any, cache_key: Any = None) -> VectorPlan:
        key = cache_key
        td = getattr(features, "record", features)
        if key is None and hasattr(td, "lineage") and hasattr(td, "split_counts"):
            key = ("td", td.id)
        if key is None:
            try:
                key = tuple(features) if not isinstance(features, str) else (features,)
                hash(key)
            except TypeError:
                key = None
        if key is not None:
            cached = self._plans.get(key)
            if cached is not None:
                return cached
        plan = self._plan(self._feature_list(features))
        if key is not None:
            self._plans[key] = plan
        return plan

    def _plan(self, items: list[Any]) -> VectorPlan:
        if not items:
            raise InvalidParameter("a feature vector needs at least one feature")
        refs: list[tuple[FeatureGroup, str, str]] = []
        for item in items:
            refs.extend(self._resolve(item))
        groups: list[_Group] = []
        index: dict[int, int] = {}
        slots: list[tuple[int, int, bool]] = []
        names: list[str] = []
        types: list[FeatureType] = []
        seen: dict[str, int] = {}
        for _fg, _feature, alias in refs:
            seen[alias] = seen.get(alias, 0) + 1
        for fg, feature, alias in refs:
            if fg.id not in index:
                fresh = self.feature_group(fg)
                self._require_online(fresh)
                self._repair_if_needed(fresh)
                codec = self.codec(fresh)
                index[fg.id] = len(groups)
                groups.append(
                    _Group(
                        fg=fresh,
                        codec=codec,
                        read=self.backend.reader(codec),
                        key_names=codec.key_names,
                        norms=codec.key_normalizers,
                        single=codec.single_key,
                    )
                )
            g = groups[index[fg.id]]
            if feature in g.key_names:
                slots.append((index[fg.id], g.key_names.index(feature), True))
            else:
                slots.append((index[fg.id], g.codec.value_names.index(feature), False))
            names.append(alias if seen[alias] == 1 else f"{fg.name}.{alias}")
            types.append(fg.feature(feature).ftype)  # type: ignore[union-attr]
        return VectorPlan(names, types, groups, slots)

    # serving ------------------------------------------------------------------

    def get_feature_vector(
        self, features: Any, entity: Mapping[str, Any], *, return_type: str = "list"
    ) -> Any:
        """One entity's feature values in the requested order (None for an
        unknown key). ``return_type``: ``list`` (default), ``dict``, ``arrow``."""
        plan = self.plan(features)
        found = []
        if self._batched and len(plan.groups) > 1:  # one round trip to the server
            prims = [g.prim(entity) for g in plan.groups]
            rows = self.backend.lookup_groups(
                [(g.codec, [p]) for g, p in zip(plan.groups, prims, strict=True)]
            )
            found = [(p, r[0]) for p, r in zip(prims, rows, strict=True)]
        else:
            for g in plan.groups:
                prim = g.prim(entity)
                found.append((prim, g.read(prim)))
        values: list[Any] = []
        for gi, i, is_key in plan.slots:
            prim, row = found[gi]
            if is_key:
                values.append(plan.groups[gi].codec.key_values(prim)[i])
            else:
                values.append(None if row is None else row[i])
        if return_type == "list":
            return values
        if return_type == "dict":
            return dict(zip(plan.names, values, strict=True))
        if return_type in ("arrow", "pyarrow"):
            return pa.Table.from_arrays(
                [to_array([v], t.arrow) for v, t in zip(values, plan.types, strict=True)],
                names=plan.names,
            )
        raise InvalidParameter(
            f"unknown return_type {return_type!r}", hint="Use 'list', 'dict' or 'arrow'."
        )

    def _prims_of_table(self, g: _Group, table: pa.Table) -> list[Any]:
        cols = []
        for name, ftype in zip(g.key_names, g.codec.key_types, strict=True):
            if name not in table.column_names:
                raise g.missing(dict.fromkeys(table.column_names))
            column = table.column(name)
            if column.null_count:
                raise g.null(name)
            try:
                if not column.type.equals(ftype.arrow):
                    column = pc.cast(column, ftype.arrow, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                raise DatatypeMismatch(
                    f'key "{name}" has type {ftype.name}; got a column of {column.type}',
                    hint=f"Pass {ftype.name} values for {name}.",
                ) from None
            cols.append(column_to_prims(column, ftype))
        return cols[0] if g.single else list(zip(*cols, strict=True))

    def lookup_rows(
        self, plan: VectorPlan, entities: Any
    ) -> tuple[list[list[Any]], list[list[tuple[Any, ...] | None]]]:
        """Per group: the prim keys and the found rows, one per entity."""
        prims = self.key_lists(plan, entities)
        rows = self.backend.lookup_groups(
            [(g.codec, p) for g, p in zip(plan.groups, prims, strict=True)]
        )
        return prims, rows

    def key_lists(self, plan: VectorPlan, entities: Any) -> list[list[Any]]:
        """Per group: the prim key of every entity."""
        # groups keyed alike (same key columns and types) share one key list
        shared: dict[tuple[Any, ...], list[Any]] = {}
        prims = []
        table = None
        listed = isinstance(entities, Sequence) and not isinstance(entities, str | bytes)
        for g in plan.groups:
            sig = (*g.key_names, *(t.name for t in g.codec.key_types))
            p = shared.get(sig)
            if p is None:
                if listed:
                    p = _prims_of_dicts(g, entities)
                else:
                    if table is None:
                        table = as_arrow(entities)
                    p = self._prims_of_table(g, table)
                shared[sig] = p
            prims.append(p)
        return prims

    def get_feature_vectors(
        self, features: Any, entities: Any, *, return_type: str = "arrow"
    ) -> Any:
        """Many entities (a list of dicts, a dict of columns, an Arrow table or
        a DataFrame): one row per entity, in order, NULLs for unknown keys.
        ``return_type``: ``arrow`` (default), ``list`` (of lists) or ``dict``
        (list of dicts)."""
        plan = self.plan(features)
        if return_type == "arrow" and hasattr(self.backend, "take"):
            table = self._take(plan, entities)
            if table is not None:
                return table
        prims, rows = self.lookup_rows(plan, entities)
        columns: list[list[Any]] = []
        for gi, i, is_key in plan.slots:
            if is_key:
                kv = plan.groups[gi].codec.key_values
                columns.append([kv(p)[i] for p in prims[gi]])
            else:
                columns.append([None if r is None else r[i] for r in rows[gi]])
        if return_type == "arrow":
            return pa.Table.from_arrays(
                [to_array(c, t.arrow) for c, t in zip(columns, plan.types, strict=True)],
                names=plan.names,
            )
        if return_type == "list":
            return [list(r) for r in zip(*columns, strict=True)]
        if return_type == "dict":
            return [dict(zip(plan.names, r, strict=True)) for r in zip(*columns, strict=True)]
        raise InvalidParameter(
            f"unknown return_type {return_type!r}", hint="Use 'arrow', 'list' or 'dict'."
        )

    def _take(self, plan: VectorPlan, entities: Any) -> pa.Table | None:
        """The Arrow batch path of the embedded store: one ``take`` per group
        from its columnar copy (None: not available, use the row path)."""
        prims = self.key_lists(plan, entities)
        take = self.backend.take  # type: ignore[attr-defined]
        tables = []
        for g, p in zip(plan.groups, prims, strict=True):
            t = take(g.codec, p)
            if t is None:
                return None
            tables.append(t)
        arrays = []
        for (gi, i, is_key), ftype in zip(plan.slots, plan.types, strict=True):
            if is_key:
                kv = plan.groups[gi].codec.key_values
                arrays.append(to_array([kv(p)[i] for p in prims[gi]], ftype.arrow))
            else:
                arrays.append(tables[gi].column(i))
        return pa.Table.from_arrays(arrays, names=plan.names)

    # the planner's hook ---------------------------------------------------------

    def online_sql(self, text: str, params: Sequence[Any] | None = None) -> pa.Table | None:
        """Answer statement text that is a key lookup of online groups from a
        cached plan (None: not one; run it normally)."""
        from fsql.online.prepared import run

        return run(self, text, params)

    def online_lookup(self, plan: Any) -> pa.Table | None:
        """Answer a planned ``SELECT FEATURES ... WHERE key = ...`` from the
        online store, shaped like the offline answer (key columns, then the
        features; keys the first group does not have give no row). None when
        the query is not a pure lookup of online groups."""
        keys = getattr(plan, "lookup_keys", None)
        if keys is None or getattr(plan, "spine", None) is not None:
            return None
        if (
            getattr(plan, "as_of_us", None) is not None
            or getattr(plan, "system_time_us", None) is not None
        ):
            return None
        groups = getattr(plan, "groups", [])
        if not groups or any(g.kind != "cached" or not g.online for g in groups):
            return None
        refs = []
        for r in plan.features:
            if r.fg is None:
                return None
            refs.append((r.fg, r.feature, r.alias))
        for g in groups:
            if any(k not in keys.column_names for k in g.primary_key):
                return None
        limit = None
        if getattr(plan, "limit", None) is not None:
            try:
                limit = int(plan.limit.expression.this)
            except (AttributeError, TypeError, ValueError):
                return None
        key_columns = list(getattr(plan, "key_columns", groups[0].primary_key))
        try:
            vplan = self.plan(
                tuple(refs), cache_key=("refs", *((r[0].id, r[1], r[2]) for r in refs))
            )
        except NotOnline:
            return None
        if keys.num_rows > 1:
            keys = _distinct(keys)
        _, rows = self.lookup_rows(vplan, keys)
        # the first group decides which keys have a row (as the offline LEFT JOIN does)
        first = next((i for i, g in enumerate(vplan.groups) if g.fg.id == groups[0].id), None)
        if first is not None:
            found = rows[first]
        else:
            g0 = groups[0]
            probe = self.plan(((g0, g0.primary_key[0], "_probe"),), cache_key=("probe", g0.id))
            found = self.lookup_rows(probe, keys)[1][0]
        take = [i for i, r in enumerate(found) if r is not None]
        if limit is not None:
            take = take[:limit]
        if len(take) != keys.num_rows:
            keys = keys.take(pa.array(take, type=pa.int64()))
            rows = [[group_rows[i] for i in take] for group_rows in rows]
        arrays = [keys.column(k) for k in key_columns]
        names = list(key_columns)
        for n, ((gi, i, is_key), ref) in enumerate(zip(vplan.slots, plan.features, strict=True)):
            if is_key:
                arrays.append(keys.column(vplan.groups[gi].key_names[i]))
            else:
                arrays.append(
                    to_array([None if r is None else r[i] for r in rows[gi]], vplan.types[n].arrow)
                )
            names.append(ref.alias)
        return pa.Table.from_arrays(arrays, names=names)


def _prims_of_dicts(g: _Group, entities: Sequence[Any]) -> list[Any]:
    """Prim keys of a list of entity dicts (a fast path for the common case;
    any problem is re-raised entity by entity with its precise error)."""
    if g.single:
        name, norm = g.key_names[0], g.norms[0]
        try:
            return [norm(e[name]) for e in entities]
        except (KeyError, TypeError, FsqlError):
            pass
    prim = g.prim
    return [prim(e) for e in entities]


def _distinct(table: pa.Table) -> pa.Table:
    """Rows of ``table`` without repeats, first occurrence order."""
    seen: set[Any] = set()
    keep = []
    for i, row in enumerate(zip(*[c.to_pylist() for c in table.columns], strict=True)):
        if row not in seen:
            seen.add(row)
            keep.append(i)
    return table.take(keep) if len(keep) != table.num_rows else table
