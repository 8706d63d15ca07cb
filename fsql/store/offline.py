"""The offline store: one ClickHouse MergeTree table per cached feature-group
version, ordered by (primary key, event time), with two hidden columns.

``_commit_id`` and ``_commit_time`` record which commit wrote each row, so any
past state can be rebuilt (``FOR SYSTEM_TIME AS OF``) and a later commit of
the same (primary key, event time) supersedes an earlier one on read.

A commit is atomic: rows go to a staging table first, which is attached to
the feature group's table in one step (ClickHouse moves a whole partition at
once), and the catalog marks the commit done only after that. On open,
pending commits left by a crash are rolled back.
"""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
from sqlglot import exp

from fsql.catalog import Catalog, Commit, FeatureGroup
from fsql.connectors.engine import Engine, input_ref
from fsql.errors import UniqueViolation
from fsql.sql.engine_dialect import FsqlClickHouse
from fsql.store.conform import conform
from fsql.types import clickhouse_type

COMMIT_ID = "_commit_id"
COMMIT_TIME = "_commit_time"
HIDDEN = (COMMIT_ID, COMMIT_TIME)
STAGING_PREFIX = "_staging_"
DIALECT = FsqlClickHouse


def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.Column(this=ident(name), table=ident(table) if table else None)


def select_from(exprs: list[exp.Expr], relation: exp.Expr) -> exp.Select:
    """``SELECT exprs FROM relation``, built directly: sqlglot's builder
    helpers re-parse and copy, which dominates planning of wide queries."""
    return exp.Select(expressions=exprs, from_=exp.From(this=relation))


def subquery(query: exp.Expr, alias: str) -> exp.Subquery:
    return exp.Subquery(this=query, alias=exp.TableAlias(this=ident(alias)))


def alias(expression: exp.Expr, name: str) -> exp.Alias:
    return exp.Alias(this=expression, alias=ident(name))


def database_name(project: str) -> str:
    return f"fsql_{project}"


def table_ref(fg: FeatureGroup, *, staging_commit: int | None = None) -> exp.Table:
    name = fg.qualified_name
    if staging_commit is not None:
        name = f"{STAGING_PREFIX}{name}_{staging_commit}"
    return exp.Table(this=ident(name), db=ident(database_name(fg.project)))


def micros_literal(us: int) -> exp.Expr:
    """A UTC DateTime64(6) value from integer microseconds."""
    return exp.func("fromUnixTimestamp64Micro", exp.Literal.number(us), exp.Literal.string("UTC"))


def sort_key(fg: FeatureGroup) -> list[str]:
    """(primary key, event time); a key that holds the event time (label and
    spine groups often do) lists it once."""
    return list(dict.fromkeys([*fg.primary_key, *([fg.event_time] if fg.event_time else [])]))


class OfflineStore:
    def __init__(self, engine: Engine, catalog: Catalog) -> None:
        self.engine = engine
        self.catalog = catalog
        self._group_locks: dict[int, threading.RLock] = {}
        self._locks_guard = threading.Lock()

    # DDL ----------------------------------------------------------------

    def ensure_database(self, project: str) -> None:
        self.engine.execute(
            exp.Create(this=ident(database_name(project)), kind="DATABASE", exists=True).sql(
                DIALECT
            )
        )

    def _create_sql(self, fg: FeatureGroup, target: exp.Table, commit: Commit | None = None) -> str:
        """``CREATE TABLE``; with ``commit`` (a staging table) the hidden columns
        default to that commit's id and time, so inserts need not carry them
        (ATTACH PARTITION ignores defaults: the structures still match)."""
        not_null = set(sort_key(fg))
        columns = [
            exp.ColumnDef(
                this=ident(f.name), kind=clickhouse_type(f.ftype, nullable=f.name not in not_null)
            )
            for f in fg.features
        ]
        id_default: list[exp.Expr] = []
        time_default: list[exp.Expr] = []
        if commit is not None:
            id_default = [
                exp.ColumnConstraint(
                    kind=exp.DefaultColumnConstraint(this=exp.Literal.number(commit.id))
                )
            ]
            time_default = [
                exp.ColumnConstraint(
                    kind=exp.DefaultColumnConstraint(this=micros_literal(commit.commit_time_us))
                )
            ]
        columns.append(
            exp.ColumnDef(
                this=ident(COMMIT_ID),
                kind=exp.DataType.build("UInt64", dialect=DIALECT),
                constraints=id_default,
            )
        )
        columns.append(
            exp.ColumnDef(
                this=ident(COMMIT_TIME),
                kind=exp.DataType.build("DateTime64(6, 'UTC')", dialect=DIALECT),
                constraints=time_default,
            )
        )
        order = exp.Tuple(expressions=[col(c) for c in sort_key(fg)])
        create = exp.Create(
            this=exp.Schema(this=target, expressions=columns),
            kind="TABLE",
            exists=True,
            properties=exp.Properties(
                expressions=[
                    exp.EngineProperty(this=exp.var("MergeTree")),
                    exp.Order(expressions=[exp.Ordered(this=order)]),
                ]
            ),
        )
        return create.sql(DIALECT)

    def create(self, fg: FeatureGroup) -> None:
        self.ensure_database(fg.project)
        self.engine.execute(self._create_sql(fg, table_ref(fg)))

    def explain_create(self, fg: FeatureGroup) -> list[str]:
        """The engine SQL :meth:`create` runs, for EXPLAIN."""
        database = exp.Create(this=ident(database_name(fg.project)), kind="DATABASE", exists=True)
        return [database.sql(DIALECT) + ";", self._create_sql(fg, table_ref(fg)) + ";"]

    def explain_commit(self, fg: FeatureGroup, columns: list[str]) -> list[str]:
        """The engine SQL of one commit (:meth:`insert`), for EXPLAIN; ``N``
        stands for the commit id the catalog hands out."""
        staging = table_ref(fg, staging_commit=0)
        staging.set("this", ident(staging.name[: -len("0")] + "N"))
        target = exp.Schema(this=staging, expressions=[ident(n) for n in columns])
        insert = exp.Insert(this=target, expression=select_from([exp.Star()], input_ref(0)))
        return [
            f"-- one commit: the rows are staged, checked for duplicate "
            f"({', '.join(sort_key(fg))}), then attached atomically",
            self._create_sql(fg, staging) + ";",
            insert.sql(DIALECT) + ";",
            f"ALTER TABLE {table_ref(fg).sql(DIALECT)} ATTACH PARTITION tuple() FROM "
            f"{staging.sql(DIALECT)};",
            exp.Drop(tables=[staging], kind="TABLE", exists=True).sql(DIALECT) + ";",
        ]

    def explain_drop(self, fg: FeatureGroup) -> list[str]:
        return [exp.Drop(tables=[table_ref(fg)], kind="TABLE", exists=True).sql(DIALECT) + ";"]

    def drop(self, fg: FeatureGroup) -> None:
        self.engine.execute(
            exp.Drop(tables=[table_ref(fg)], kind="TABLE", exists=True).sql(DIALECT)
        )

    # commits ------------------------------------------------------------

    def group_lock(self, fg: FeatureGroup) -> threading.RLock:
        """The lock that serializes the commits of one feature-group version
        in this process (:meth:`insert` takes it; the store core holds it
        across the commit hook too, so subscribers see commits in order)."""
        with self._locks_guard:
            lock = self._group_locks.get(fg.id)
            if lock is None:
                lock = self._group_locks[fg.id] = threading.RLock()
            return lock

    def insert(
        self, fg: FeatureGroup, data: pa.Table, *, fail_after_staging: bool = False
    ) -> Commit:
        """Write ``data`` as one commit. ``fail_after_staging`` injects a failure
        between writing and attaching (for tests of atomicity).

        Commits of one group are serialized in this process
        (:meth:`group_lock`), so the upsert check of each sees every earlier
        commit's rows. Commits from other processes sharing the catalog and
        engine may still run at the same time: a commit that had such a
        neighbour (pending when it began, or begun after it) checks again
        after attaching, against every other commit's rows, so of two
        overlapping commits at least the one that checks last sees the other
        (both attach before either's last check) and ``has_upserts`` is set."""
        rows = conform(fg, data)
        with self.group_lock(fg):
            return self._insert(fg, rows, fail_after_staging)

    def _insert(self, fg: FeatureGroup, rows: pa.Table, fail_after_staging: bool) -> Commit:
        commit = self.catalog.begin_commit(fg)
        staging = table_ref(fg, staging_commit=commit.id)
        try:
            # commits of this group other processes have in flight
            neighbours = [c for c in self.catalog.commits(fg, state="pending") if c.id != commit.id]
            self.engine.execute(self._create_sql(fg, staging, commit))
            columns = exp.Schema(this=staging, expressions=[ident(n) for n in rows.column_names])
            self.engine.execute(
                exp.Insert(this=columns, expression=select_from([exp.Star()], input_ref(0))).sql(
                    DIALECT
                ),
                [rows],
            )
            if _may_have_duplicates(rows, sort_key(fg)):
                self._check_unique_in_commit(fg, staging)
            upserts = self._overlaps_existing(fg, staging)
            if fail_after_staging:
                raise RuntimeError("injected failure after staging")
            self.engine.execute(
                f"ALTER TABLE {table_ref(fg).sql(DIALECT)} ATTACH PARTITION tuple() FROM "
                f"{staging.sql(DIALECT)}"
            )
            if not upserts and (
                neighbours
                or any(c.state != "aborted" for c in self.catalog.commits(fg, after_id=commit.id))
            ):
                upserts = self._overlaps_existing(fg, staging, other_than=commit.id)
        except BaseException:
            self._drop_quietly(staging)
            self.catalog.abort_commit(commit)
            raise
        self._drop_quietly(staging)
        return self.catalog.finish_commit(commit, rows.num_rows, upserts=upserts)

    def _drop_quietly(self, table: exp.Table) -> None:
        try:
            self.engine.execute(exp.Drop(tables=[table], kind="TABLE", exists=True).sql(DIALECT))
        except Exception:
            pass

    def _check_unique_in_commit(self, fg: FeatureGroup, staging: exp.Table) -> None:
        key = [col(c) for c in sort_key(fg)]
        q = (
            exp.select(*key)
            .from_(staging)
            .group_by(*key)
            .having(exp.GT(this=exp.func("count"), expression=exp.Literal.number(1)))
            .limit(1)
        )
        dup = self.engine.query(q.sql(DIALECT))
        if dup.num_rows:
            values = ", ".join(f"{c}={dup.column(c)[0].as_py()!r}" for c in dup.column_names)
            raise UniqueViolation(
                f'insert into feature group "{fg.name}" has more than one row for ({values})',
                hint="One commit may hold one row per primary key and event time; "
                "a later commit of the same key and time replaces it.",
            )

    def _overlaps_existing(
        self, fg: FeatureGroup, staging: exp.Table, *, other_than: int | None = None
    ) -> bool:
        """Whether the staged rows share a (primary key, event time) with rows
        of the group's table (with ``other_than``: after attaching, with rows
        of any other commit)."""
        if fg.has_upserts:
            return True
        if other_than is None and not self.catalog.commits(fg, state="committed"):
            return False
        key = sort_key(fg)
        # First only the key ranges of the commit (scalar subqueries: constants
        # for the primary-key index); an append of new event times stops here.
        in_range: list[exp.Expr] = [
            exp.Between(
                this=col(c),
                low=exp.select(exp.func("min", col(c))).from_(staging).subquery(),
                high=exp.select(exp.func("max", col(c))).from_(staging).subquery(),
            )
            for c in key
        ]
        if other_than is not None:
            in_range.append(exp.NEQ(this=col(COMMIT_ID), expression=exp.Literal.number(other_than)))
        q = exp.select(exp.Literal.number(1)).from_(table_ref(fg)).where(*in_range).limit(1)
        if not self.engine.query(q.sql(DIALECT)).num_rows:
            return False
        key_tuple = exp.Tuple(expressions=[col(c) for c in key])
        q = q.where(
            exp.In(
                this=key_tuple,
                query=exp.select(*[col(c) for c in key]).from_(staging).subquery(),
            )
        )
        return self.engine.query(q.sql(DIALECT)).num_rows > 0

    def recover(self) -> list[int]:
        """Roll back commits a crash left pending; return their ids."""
        rolled_back = []
        for commit in self.catalog.commits(state="pending"):
            fg = self.catalog.feature_group_by_id(commit.feature_group_id)
            if fg is not None and fg.kind == "cached":
                self._drop_quietly(table_ref(fg, staging_commit=commit.id))
                delete = exp.Delete(
                    this=table_ref(fg),
                    where=exp.Where(
                        this=exp.EQ(this=col(COMMIT_ID), expression=exp.Literal.number(commit.id))
                    ),
                )
                self.engine.execute(delete.sql(DIALECT))
            self.catalog.abort_commit(commit)
            rolled_back.append(commit.id)
        # staging tables whose commit already ended (crash during cleanup)
        found = self.engine.query(
            "SELECT database, name FROM system.tables WHERE startsWith(database, 'fsql_') "
            f"AND startsWith(name, '{STAGING_PREFIX}')"
        )
        for db, name in zip(
            found.column("database").to_pylist(), found.column("name").to_pylist(), strict=True
        ):
            self._drop_quietly(exp.Table(this=ident(name), db=ident(db)))
        return rolled_back

    # reads --------------------------------------------------------------

    def source(
        self,
        fg: FeatureGroup,
        *,
        system_time_us: int | None = None,
        since_us: int | None = None,
        hidden: bool = False,
        columns: list[str] | None = None,
    ) -> exp.Select:
        """A relation with the feature group's rows as they stood at
        ``system_time_us`` (None: now), one row per (primary key, event time):
        the latest commit wins. ``columns`` projects (default: every feature).
        Only cached groups: every kind is read through
        :func:`fsql.bind.sources.group_source`."""
        names = columns if columns is not None else [f.name for f in fg.features]
        names = names + (list(HIDDEN) if hidden else [])
        q = select_from([col(n) for n in names], table_ref(fg))
        if system_time_us is not None:
            q = q.where(
                exp.LTE(this=col(COMMIT_TIME), expression=micros_literal(system_time_us)),
                copy=False,
            )
        if since_us is not None:
            q = q.where(
                exp.GT(this=col(COMMIT_TIME), expression=micros_literal(since_us)), copy=False
            )
        if fg.has_upserts and since_us is None:
            key = [col(c) for c in sort_key(fg)]
            inner = list(dict.fromkeys([*names, *sort_key(fg), COMMIT_ID]))
            q.set("expressions", [col(n) for n in inner])
            q = q.order_by(*key, exp.Ordered(this=col(COMMIT_ID), desc=True), copy=False)
            q = select_from([col(n) for n in names], subquery(_limit_one_by(q, key), "latest"))
        return q

    def count(self, fg: FeatureGroup) -> int:
        q = exp.select(exp.func("count")).from_(self.source(fg).subquery("fg"))
        return int(self.engine.query(q.sql(DIALECT)).column(0)[0].as_py())


# odd 64-bit multipliers, one per key column (cycled)
_MULTIPLIERS = tuple(
    np.uint64(m)
    for m in (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)
)


def _may_have_duplicates(rows: pa.Table, key: list[str]) -> bool:
    """False when the (primary key, event time) values of ``rows`` are surely
    distinct: a 64-bit hash of each key is sorted and neighbours compared
    (far cheaper than a GROUP BY). True means "run the exact check".

    The hash is a sum of the key columns times odd constants (mod 2**64):
    equal keys always hash equal, and a rare collision of distinct keys only
    costs the exact check, never a wrong answer."""
    if rows.num_rows < 2:
        return False
    if any(_strictly_increasing(rows.column(name)) for name in reversed(key)):
        return False  # one column never repeats (time-ordered events, key-sorted snapshots)
    h: np.ndarray | None = None
    try:
        for i, name in enumerate(key):
            column = rows.column(name)
            t = column.type
            if pa.types.is_date32(t):
                column = column.cast(pa.int32())
            elif pa.types.is_timestamp(t) or pa.types.is_date64(t) or pa.types.is_boolean(t):
                column = column.cast(pa.int64())
            elif not pa.types.is_integer(column.type):
                # strings, decimals, ...: the dictionary index is an exact code
                column = column.combine_chunks().dictionary_encode().indices
            v = np.asarray(column.to_numpy())
            v = v.view(np.uint64) if v.dtype.itemsize == 8 else v.astype(np.uint64)
            x = v * _MULTIPLIERS[i % len(_MULTIPLIERS)]
            if h is None:
                h = x
            else:
                h += x
    except (pa.ArrowException, TypeError, ValueError):
        return True
    if h is None:
        return False
    h.sort()
    return bool((h[1:] == h[:-1]).any())


def _strictly_increasing(column: pa.ChunkedArray) -> bool:
    """Whether a numeric or temporal column's values rise from row to row
    (then no two rows share them, whatever the other key columns hold): an
    O(n) check that spares the prefilter's sort for rows that arrive in time
    order with distinct times, or sorted by a unique key."""
    t = column.type
    if column.null_count or not (
        pa.types.is_integer(t) or pa.types.is_timestamp(t) or pa.types.is_date(t)
    ):
        return False
    if pa.types.is_timestamp(t) or pa.types.is_date64(t):
        column = column.cast(pa.int64())
    elif pa.types.is_date32(t):
        column = column.cast(pa.int32())
    v = np.asarray(column.to_numpy())
    return bool(np.all(v[1:] > v[:-1]))


def _limit_one_by(q: exp.Select, key: list[exp.Column]) -> exp.Select:
    """``q LIMIT 1 BY key`` (ClickHouse)."""
    q.set("limit", exp.Limit(expression=exp.Literal.number(1), expressions=key))
    return q
