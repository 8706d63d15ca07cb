"""The public Python surface: :class:`Store`, what :func:`fsql.connect`
returns.

It is the store core (:class:`fsql.store.core.StoreCore`: folder, catalog,
engine, feature-group life cycle) with every capability of the layers above
it: SQL, feature retrieval, connectors and on-demand groups, federated
queries, training datasets and the online store. Each method delegates to
the module that owns the capability; this module only wires them together.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from fsql import plugins  # noqa: F401  (subscribes hooks, registers relation kinds)
from fsql.errors import FsqlError, InvalidParameter
from fsql.feature_group import FeatureGroupHandle
from fsql.online.api import OnlineMixin
from fsql.plan.features import plan_features
from fsql.plan.get_features import get_features
from fsql.plan.plain import STREAM_BATCH_ROWS
from fsql.plan.window import federated_sql, run_federated
from fsql.sql.dialect import parse
from fsql.sql.nodes import SelectFeatures
from fsql.statements import sources
from fsql.statements.run import run, stream, too_deeply_nested
from fsql.store.core import StoreCore
from fsql.training import dataset as training
from fsql.training.dataset import RebuildResult, TrainingDataset


class Store(OnlineMixin, StoreCore):
    """One feature store. Create with :func:`fsql.connect`."""

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
        fg = self.create_group(
            name,
            data,
            primary_key=primary_key,
            event_time=event_time,
            schema=schema,
            description=description,
            features=features,
            version=version,
            online=online,
            metadata=metadata,
        )
        return FeatureGroupHandle(self, fg)

    def get_feature_group(self, name: str, version: int | str | None = None) -> FeatureGroupHandle:
        return FeatureGroupHandle(self, self.feature_group(name, version))

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
        record = sources.create_connector(
            self, name, type, options or {}, description=description, check=check
        )
        return sources.describe_connector(record)

    def connectors(self) -> pa.Table:
        return sources.connectors_table(self)

    def describe_connector(self, name: str) -> dict[str, Any]:
        return sources.connector_info(self, name)

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
        record = sources.alter_connector(
            self, name, options or {}, description=description, check=check
        )
        return sources.describe_connector(record)

    def drop_connector(self, name: str) -> None:
        sources.drop_connector(self, name)

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
        fg = sources.create_feature_group(
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
        :mod:`fsql.plan.window`)."""
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
        ``params`` bind ``$1, $2, ...`` (as literals in the parsed tree).

        Every error is an :class:`~fsql.errors.FsqlError` with a SQLSTATE:
        the layers below raise them, and any other exception that still
        escapes (a bug) becomes one here, as an internal error (XX000)
        chained to the original (``__cause__``)."""
        try:
            return run(self, text, params)
        except FsqlError:
            raise
        except Exception as e:
            raise _sql_error(e, text) from (None if isinstance(e, RecursionError) else e)

    def sql_stream(
        self,
        text: str,
        params: Sequence[Any] | None = None,
        *,
        batch_rows: int = STREAM_BATCH_ROWS,
    ) -> pa.RecordBatchReader:
        """:meth:`sql` with the last statement's result as a stream of Arrow
        record batches: a query's rows are read from the engine as the
        reader is read, so memory does not grow with the result (see
        :func:`fsql.statements.run.stream` for what runs materialized).
        The reader holds an engine session until it is read to the end,
        fails, or is dropped. Every error is an :class:`~fsql.errors.FsqlError`
        as in :meth:`sql`, while it is read too."""
        try:
            reader = stream(self, text, params, batch_rows)
        except FsqlError:
            raise
        except Exception as e:
            raise _sql_error(e, text) from (None if isinstance(e, RecursionError) else e)
        return pa.RecordBatchReader.from_batches(reader.schema, _checked(reader, text))

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
        if features is not None:
            if query is not None:
                raise InvalidParameter("give a query or features (not both)")
            query = training.features_query(list(features), as_of, with_spine=spine is not None)

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
        return training.create(
            self, name, query, data=data, spine=spine, version=version, description=description,
            options={k: v for k, v in options.items() if v is not None},
        )  # fmt: skip

    def get_training_dataset(self, name: str, version: int | None = None) -> TrainingDataset:
        return training.get(self, name, version)

    def training_datasets(self) -> pa.Table:
        """One row per training dataset version."""
        return training.listing(self)

    def drop_training_dataset(self, name: str, version: int | None = None) -> int:
        """Drop one version (or every version); returns how many."""
        return training.drop(self, name, version)

    def rebuild_training_dataset(
        self, name: str, version: int | None = None, *, location: str | None = None
    ) -> RebuildResult:
        """Re-run a version's recorded query at its recorded system time and
        compare with what was recorded (see :func:`fsql.training.dataset.rebuild`)."""
        return training.rebuild(self, name, version, location=location)

    def lineage(self, name: str) -> pa.Table:
        """Training datasets that use a feature group or feature."""
        return training.lineage(self, name)


def _sql_error(e: Exception, text: Any) -> FsqlError:
    """The :class:`FsqlError` for an exception that escaped the layers
    below while ``text`` ran (a bug, or Python's limits)."""
    if isinstance(e, RecursionError):
        return too_deeply_nested(text if isinstance(text, str) else None)
    if isinstance(e, MemoryError):
        return FsqlError("out of memory", sqlstate="53200")
    return FsqlError(
        f"internal error: {type(e).__name__}: {e}",
        hint="This is a bug in fsql; please report it with the statement.",
    )


def _checked(reader: pa.RecordBatchReader, text: str) -> Iterator[pa.RecordBatch]:
    try:
        yield from reader
    except FsqlError as e:
        # without the frames of the layers below: they hold readers, which
        # give their engine session back once dropped
        raise e.with_traceback(None) from None
    except Exception as e:
        raise _sql_error(e, text) from (None if isinstance(e, RecursionError) else e)


def _joined(value: str | Sequence[str] | None) -> str | None:
    return value if value is None or isinstance(value, str) else ",".join(value)


__all__ = ["Store"]
