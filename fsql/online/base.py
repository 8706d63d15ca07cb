"""The one online-store interface, the row codec every backend shares, and
the online-store errors.

An online store keeps, per online feature-group version, one row per primary
key: the latest one (greatest event time, then greatest commit id). Every
backend stores the same three strings per row, so each backend is a thin
transport and the semantics live in one place:

``k``   the primary key, canonical JSON of its values (``[42]``,
        ``["DE",7]``); timestamps as epoch microseconds, dates as epoch days.
``ver`` 32 hex digits: event time (epoch microseconds + 2**63) then commit
        id, 16 digits each, so comparing the strings compares (event time,
        commit id). A write replaces a row only if its ``ver`` is not
        smaller: an older event never overwrites a newer one, whatever the
        order the writes arrive in.
``v``   the non-key features in feature-group order as a JSON array, each
        value in a type-aware JSON form (timestamps as microseconds, numerics
        as strings, bytes as hex, arrays as arrays). JSON rather than pickle:
        a shared server store must never let its contents run code in a
        serving process.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fsql.catalog.records import FeatureGroup
from fsql.errors import DatatypeMismatch, FsqlError
from fsql.types import FeatureType

# --------------------------------------------------------------------------
# errors


class OnlineStoreUnavailable(FsqlError):
    """The online store server could not be reached or failed a write."""

    sqlstate = "08006"


class OnlineCommitFailed(FsqlError):
    """A commit is stored offline but its online write failed (the group is
    marked stale). ``feature_group``, ``commit_id`` and ``reason`` say which
    and why; :meth:`rolled_back` rewords the error when the store undoes the
    create whose first commit this was."""

    def __init__(
        self,
        message: str,
        *,
        feature_group: Any,
        commit_id: int,
        reason: str,
        sqlstate: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, sqlstate=sqlstate, hint=hint)
        self.feature_group = feature_group
        self.commit_id = commit_id
        self.reason = reason

    @staticmethod
    def of(cause: BaseException, message: str, **kwargs: Any) -> OnlineCommitFailed:
        """The error for ``cause``: 08006 (and an :class:`OnlineStoreUnavailable`)
        when the online store was unreachable."""
        if isinstance(cause, OnlineStoreUnavailable):
            return OnlineCommitUnavailable(message, **kwargs)
        return OnlineCommitFailed(message, **kwargs)

    def rolled_back(self) -> None:
        """The create of the feature group was undone: nothing was kept."""
        fg = self.feature_group
        self.message = (
            f'feature group "{fg.name}" version {fg.version} was not created: its first '
            "commit could not be written to the online store, so the create was rolled "
            "back and nothing was kept, offline or online"
        )
        self.args = (self.message,)
        self.detail = self.reason
        self.hint = (
            "Check that the online store server is up and the store's online URL is right "
            "(fsql.connect(..., online=...)), then create the feature group again; or create "
            "it without ONLINE and run ALTER FEATURE GROUP ... SET ONLINE later."
        )


class OnlineCommitUnavailable(OnlineCommitFailed, OnlineStoreUnavailable):
    """:class:`OnlineCommitFailed` because the online store was unreachable."""

    sqlstate = "08006"


class NotOnline(FsqlError):
    """A lookup asked for a feature group that is not online."""

    sqlstate = "55000"


# --------------------------------------------------------------------------
# rows

Row = tuple[str, str, str]  # (k, ver, v)
C = TypeVar("C")
VER_OFFSET = 1 << 63
_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

try:
    import orjson

    _fast_loads = orjson.loads
    _JSONError: type[Exception] = orjson.JSONDecodeError

    def _loads(text: str) -> Any:
        try:
            return _fast_loads(text)
        except _JSONError:  # NaN / Infinity tokens: only the standard library reads them
            return json.loads(text)

except ImportError:  # pragma: no cover
    _loads = json.loads  # type: ignore[assignment]


def ver_of(event_us: int, commit_id: int) -> str:
    return f"{event_us + VER_OFFSET:016x}{commit_id:016x}"


def table_name(fg: FeatureGroup) -> str:
    """The backend-neutral name of a feature group's online table."""
    return f"{fg.project}__{fg.name}__v{fg.version}"


# --------------------------------------------------------------------------
# per-type conversion: Arrow column -> JSON primitives, JSON primitive -> Python


def _kind(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytea"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "array"
    if pa.types.is_floating(t):
        return "float"
    return "plain"


def _py_to_prim(kind: str) -> Callable[[Any], Any]:
    """Python value (as Arrow's to_pylist gives it) -> JSON primitive."""
    if kind in ("timestamp", "timestamptz"):

        def ts(v: Any) -> Any:
            if v is None:
                return None
            if v.tzinfo is not None:
                v = v.astimezone(UTC).replace(tzinfo=None)
            d = v - _EPOCH
            return d.days * 86_400_000_000 + d.seconds * 1_000_000 + d.microseconds

        return ts
    if kind == "date":
        return lambda v: None if v is None else v.toordinal() - _EPOCH_ORDINAL
    if kind == "numeric":
        return lambda v: None if v is None else str(v)
    if kind == "bytea":
        return lambda v: None if v is None else bytes(v).hex()
    if kind == "float":
        return lambda v: None if v is None else float(v)
    return lambda v: v


def column_to_prims(column: pa.ChunkedArray | pa.Array, ftype: FeatureType) -> list[Any]:
    """An Arrow column as a list of JSON primitives (vectorized where Arrow can)."""
    kind = _kind(ftype.arrow)
    t = column.type
    if kind in ("timestamp", "timestamptz") and pa.types.is_timestamp(t):
        if t.unit != "us":
            column = pc.cast(column, pa.timestamp("us", tz=t.tz))
        return pc.cast(column, pa.int64()).to_pylist()
    if kind == "date" and pa.types.is_date32(t):
        return pc.cast(column, pa.int32()).to_pylist()
    if kind == "numeric" and pa.types.is_decimal(t):
        return pc.cast(column, pa.string()).to_pylist()
    if kind == "bytea" and (pa.types.is_string(t) or pa.types.is_large_string(t)):
        column = column.cast(pa.binary())  # ClickHouse String: bytes, maybe not UTF-8
    if kind == "array":
        inner = _py_to_prim(_kind(ftype.arrow.value_type))
        return [None if v is None else [inner(x) for x in v] for v in column.to_pylist()]
    conv = _py_to_prim(kind)
    if kind in ("plain", "float"):
        return column.to_pylist()
    return [conv(v) for v in column.to_pylist()]


def _prim_to_py(ftype_arrow: pa.DataType) -> Callable[[Any], Any] | None:
    """JSON primitive -> the Python value Arrow builds the feature type from
    (None when the primitive already is that value)."""
    kind = _kind(ftype_arrow)
    if kind == "timestamp":
        return lambda v: None if v is None else _EPOCH + timedelta(microseconds=v)
    if kind == "timestamptz":
        return lambda v: None if v is None else _EPOCH_UTC + timedelta(microseconds=v)
    if kind == "date":
        return lambda v: None if v is None else date.fromordinal(v + _EPOCH_ORDINAL)
    if kind == "numeric":
        return lambda v: None if v is None else Decimal(v)
    if kind == "bytea":
        return lambda v: None if v is None else bytes.fromhex(v)
    if kind == "array":
        inner = _prim_to_py(ftype_arrow.value_type)
        if inner is None:
            return None
        return lambda v: None if v is None else [inner(x) for x in v]
    return None


# --------------------------------------------------------------------------
# keys given by users


def _key_normalizer(ftype: FeatureType, column: str) -> Callable[[Any], Any]:
    """A user-supplied key value -> its JSON primitive; a clear error when the
    value does not have the key's type."""
    kind = _kind(ftype.arrow)
    arrow = ftype.arrow

    def bad(v: Any) -> DatatypeMismatch:
        return DatatypeMismatch(
            f'key "{column}" has type {ftype.name}; got {type(v).__name__} {v!r}',
            hint=f"Pass a {ftype.name} value for {column}.",
        )

    if pa.types.is_integer(arrow):

        def integer(v: Any) -> Any:
            if type(v) is int:
                return v
            if isinstance(v, np.integer):
                return int(v)
            raise bad(v)

        return integer
    if pa.types.is_string(arrow):

        def text(v: Any) -> Any:
            if type(v) is str:
                return v
            raise bad(v)

        return text
    if pa.types.is_boolean(arrow):

        def boolean(v: Any) -> Any:
            if isinstance(v, bool | np.bool_):
                return bool(v)
            raise bad(v)

        return boolean
    if kind in ("timestamp", "timestamptz"):
        conv = _py_to_prim(kind)

        def ts(v: Any) -> Any:
            if isinstance(v, str):
                try:
                    v = datetime.fromisoformat(v)
                except ValueError:
                    raise bad(v) from None
            if isinstance(v, datetime):
                return conv(v)
            raise bad(v)

        return ts
    if kind == "date":

        def day(v: Any) -> Any:
            if isinstance(v, str):
                try:
                    v = date.fromisoformat(v)
                except ValueError:
                    raise bad(v) from None
            if isinstance(v, date) and not isinstance(v, datetime):
                return v.toordinal() - _EPOCH_ORDINAL
            raise bad(v)

        return day
    if kind == "numeric":
        scale = arrow.scale

        def num(v: Any) -> Any:
            if isinstance(v, Decimal | int) and not isinstance(v, bool):
                return str(Decimal(v).quantize(Decimal(1).scaleb(-scale)))
            raise bad(v)

        return num
    if kind == "bytea":

        def raw(v: Any) -> Any:
            if isinstance(v, bytes | bytearray | memoryview):
                return bytes(v).hex()
            raise bad(v)

        return raw
    return lambda v: v


# --------------------------------------------------------------------------
# the codec of one feature group


class Codec:
    """Encodes a feature group's rows to (k, ver, v) and decodes them back."""

    def __init__(self, fg: FeatureGroup) -> None:
        self.fg = fg
        self.table = table_name(fg)
        self.key_names = list(fg.primary_key)
        keys = set(self.key_names)
        self.value_features = [f for f in fg.features if f.name not in keys]
        self.value_names = [f.name for f in self.value_features]
        self.value_types = [f.ftype for f in self.value_features]
        self.key_types = [fg.feature(k).ftype for k in self.key_names]  # type: ignore[union-attr]
        self.single_key = len(self.key_names) == 1
        self.key_normalizers = [
            _key_normalizer(t, n) for n, t in zip(self.key_names, self.key_types, strict=True)
        ]
        self._decoders = [
            (i, d)
            for i, d in enumerate(_prim_to_py(t.arrow) for t in self.value_types)
            if d is not None
        ]
        self._key_decoders = [_prim_to_py(t.arrow) for t in self.key_types]
        self._int_key = self.single_key and pa.types.is_integer(self.key_types[0].arrow)

    # keys: a "prim key" is the primitive (single-column key) or a tuple of them

    def key_string(self, prim: Any) -> str:
        if self._int_key:
            return f"[{prim:d}]"  # what the JSON encoder writes for one integer
        return _dumps([prim] if self.single_key else list(prim))

    def prim_of_string(self, k: str) -> Any:
        values = _loads(k)
        return values[0] if self.single_key else tuple(values)

    def key_values(self, prim: Any) -> list[Any]:
        """The Python values of a prim key (for output columns)."""
        values = [prim] if self.single_key else list(prim)
        return [d(v) if d else v for d, v in zip(self._key_decoders, values, strict=True)]

    def decode(self, v: str) -> tuple[Any, ...]:
        values = _loads(v)
        for i, d in self._decoders:
            values[i] = d(values[i])
        return tuple(values)

    # rows

    def encode(
        self, rows: pa.Table, event_us: Sequence[int], commit_ids: Sequence[int]
    ) -> list[Row]:
        """(k, ver, v) for every row of ``rows`` (the feature group's columns)."""
        n = rows.num_rows
        if n == 0:
            return []
        key_cols = [
            column_to_prims(rows.column(k), t)
            for k, t in zip(self.key_names, self.key_types, strict=True)
        ]
        value_cols = [column_to_prims(rows.column(f.name), f.ftype) for f in self.value_features]
        keys = [_dumps(list(k)) for k in zip(*key_cols, strict=True)]
        values = (
            [_dumps(list(v)) for v in zip(*value_cols, strict=True)] if value_cols else ["[]"] * n
        )
        vers = [ver_of(e, c) for e, c in zip(event_us, commit_ids, strict=True)]
        return list(zip(keys, vers, values, strict=True))


def to_array(values: list[Any], dtype: pa.DataType) -> pa.Array:
    """``pa.array(values, type=dtype)``; floats go through type inference
    (pyarrow converts a typed list of non-null floats ~20x slower)."""
    if pa.types.is_floating(dtype):
        try:
            arr = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array(values, type=dtype)
        if arr.type.equals(dtype):
            return arr
        if pa.types.is_floating(arr.type) or pa.types.is_null(arr.type):
            return arr.cast(dtype, safe=False)
    return pa.array(values, type=dtype)


def latest_per_key(rows: Iterable[Row]) -> list[Row]:
    """Keep the row with the greatest ver per key."""
    best: dict[str, Row] = {}
    for row in rows:
        cur = best.get(row[0])
        if cur is None or row[1] >= cur[1]:
            best[row[0]] = row
    return list(best.values())


# --------------------------------------------------------------------------
# the interface


class OnlineStore(ABC):
    """One online-store backend. ``table`` arguments are backend-neutral names
    (:func:`table_name`); a backend maps them to its own (prefixed) names."""

    kind: str = "?"

    @abstractmethod
    def write(self, table: str, rows: Sequence[Row], codec: Codec | None = None) -> None:
        """Upsert rows; a row replaces the stored one only if its ver is not
        smaller. ``rows`` holds at most one row per key."""

    @abstractmethod
    def replace(self, table: str, rows: Sequence[Row], codec: Codec | None = None) -> None:
        """Make ``rows`` the whole content of ``table``, atomically for readers."""

    @abstractmethod
    def get(self, table: str, keys: Sequence[str]) -> list[str | None]:
        """The stored ``v`` of each key string, None where absent."""

    @abstractmethod
    def scan(self, table: str) -> Iterator[Row]:
        """Every stored row."""

    @abstractmethod
    def drop(self, table: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    # True when reads of several tables can share one round trip (servers)
    batched_reads = False

    def get_groups(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[str | None]]:
        """:meth:`get` of several tables at once (servers: one round trip)."""
        return [self.get(table, keys) for table, keys in requests]

    def lookup_groups(
        self, requests: Sequence[tuple[Codec, Sequence[Any]]]
    ) -> list[list[tuple[Any, ...] | None]]:
        """:meth:`lookup` of several tables at once."""
        if not self.batched_reads:
            return [self.lookup(codec, prims) for codec, prims in requests]
        found = self.get_groups(
            [(codec.table, [codec.key_string(p) for p in prims]) for codec, prims in requests]
        )
        return [
            [None if v is None else codec.decode(v) for v in values]
            for (codec, _), values in zip(requests, found, strict=True)
        ]

    def lookup(self, codec: Codec, prims: Sequence[Any]) -> list[tuple[Any, ...] | None]:
        """Decoded value tuples of prim keys (None where absent)."""
        found = self.get(codec.table, [codec.key_string(p) for p in prims])
        return [None if v is None else codec.decode(v) for v in found]

    def lookup_one(self, codec: Codec, prim: Any) -> tuple[Any, ...] | None:
        return self.lookup(codec, [prim])[0]

    def reader(self, codec: Codec) -> Callable[[Any], tuple[Any, ...] | None]:
        """A lookup function bound to one table (the serving hot path)."""
        return lambda prim: self.lookup_one(codec, prim)


class Pool(Generic[C]):
    """Connections to an online-store server: one per concurrent caller, up
    to ``size`` (callers beyond wait), reused last-in first-out. A connection
    that failed is closed, not reused; the next caller opens a new one."""

    def __init__(self, connect: Callable[[], C], close: Callable[[C], None], size: int = 8) -> None:
        self._connect = connect
        self._close = close
        self._idle: list[C] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self, broken: tuple[type[BaseException], ...]) -> Iterator[C]:
        """A connection; an exception of a ``broken`` type discards it."""
        self._slots.acquire()
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._connect()
            try:
                yield conn
            except broken:
                self._discard(conn)
                raise
            except BaseException:
                with self._lock:
                    self._idle.append(conn)
                raise
            with self._lock:
                self._idle.append(conn)
        finally:
            self._slots.release()

    def _discard(self, conn: C) -> None:
        try:
            self._close(conn)
        except Exception:
            pass

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)


def open_online_store(url: str, folder: Any) -> OnlineStore:
    """The backend a store's ``online`` setting names: ``embedded`` (default),
    ``postgresql://...``, ``mysql://...`` / ``mariadb://...``, ``redis://...``.
    A ``prefix`` query parameter sets the table/key prefix on servers."""
    from fsql.errors import InvalidParameter

    if url in ("embedded", "sqlite", ""):
        from fsql.online.embedded import EmbeddedOnlineStore

        return EmbeddedOnlineStore(folder / "online.sqlite")
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        from fsql.online.postgres import PostgresOnlineStore

        return PostgresOnlineStore(url)
    if scheme in ("mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql"):
        from fsql.online.mysql import MySQLOnlineStore

        return MySQLOnlineStore(url)
    if scheme in ("redis", "rediss"):
        from fsql.online.redis import RedisOnlineStore

        return RedisOnlineStore(url)
    raise InvalidParameter(
        f"unknown online store {url!r}",
        hint="Use 'embedded', or a postgresql://, mysql:// (MariaDB) or redis:// URL.",
    )


def split_prefix(url: str, default: str = "fsql_online_") -> tuple[str, str]:
    """Remove the ``prefix`` query parameter from a URL; return (url, prefix)."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = default
    rest = []
    for k, v in query:
        if k == "prefix":
            prefix = v
        else:
            rest.append((k, v))
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix


def physical_name(prefix: str, table: str, limit: int = 63) -> str:
    """``prefix + table``, shortened with a hash when over the server's limit."""
    import hashlib

    name = prefix + table
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return name[: limit - 11] + "_" + digest
