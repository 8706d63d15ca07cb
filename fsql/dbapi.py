"""DB-API 2.0 (PEP 249) over an in-process store: ``pandas.read_sql`` and
SQLAlchemy (dialect ``fsql``) work without a server.

>>> import fsql.dbapi
>>> conn = fsql.dbapi.connect("path/to/store")             # doctest: +SKIP
>>> cur = conn.cursor()                                      # doctest: +SKIP
>>> cur.execute("SELECT * FROM transactions WHERE customer_id = %s", (42,))  # doctest: +SKIP
>>> cur.fetchall()                                           # doctest: +SKIP

Parameters use the ``pyformat`` style (``%s`` or ``%(name)s``); they become
``$1, $2, ...`` and are bound as literal nodes in the parsed statement, never
spliced into the text. There are no transactions: every statement commits
on its own (``commit`` is a no-op, ``rollback`` cannot undo).
"""

from __future__ import annotations

import datetime as dt
import re
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from fsql.errors import FsqlError
from fsql.sql.lexer import spans
from fsql.types import from_arrow

apilevel = "2.0"
threadsafety = 1  # threads may share the module, not connections
paramstyle = "pyformat"


# --- exceptions (PEP 249 names) -------------------------------------------------


class Warning(Exception):
    pass


class Error(Exception):
    def __init__(self, message: str, *, sqlstate: str = "XX000", cause: Exception | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate
        self.pgcode = sqlstate
        self.cause = cause


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


def _wrap(e: FsqlError) -> Error:
    cls: type[Error]
    klass = e.sqlstate[:2]
    if klass == "22":
        cls = DataError
    elif klass == "23":
        cls = IntegrityError
    elif klass in ("42", "3D", "26", "34"):
        cls = ProgrammingError
    elif klass == "0A":
        cls = NotSupportedError
    elif klass in ("08", "53", "55", "57"):
        cls = OperationalError
    else:
        cls = DatabaseError
    err = cls(str(e), sqlstate=e.sqlstate, cause=e)
    return err


# --- type objects ------------------------------------------------------------------


class _TypeSet(frozenset[int]):
    def __eq__(self, other: object) -> bool:
        if isinstance(other, int):
            return other in self
        return super().__eq__(other)

    def __hash__(self) -> int:
        return super().__hash__()


STRING = _TypeSet({25, 1043, 114, 18, 19})
BINARY = _TypeSet({17})
NUMBER = _TypeSet({16, 20, 21, 23, 700, 701, 1700})
DATETIME = _TypeSet({1082, 1114, 1184})
ROWID = _TypeSet({26})

Date = dt.date
Time = dt.time
Timestamp = dt.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> dt.date:
    return dt.date.fromtimestamp(ticks)


def TimeFromTicks(ticks: float) -> dt.time:
    return dt.datetime.fromtimestamp(ticks).time()


def TimestampFromTicks(ticks: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ticks)


# --- parameters ----------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"%\((?P<name>[^)]+)\)s|%(?P<pos>s)|%%")


def to_dollar(text: str, params: Sequence[Any] | Mapping[str, Any] | None) -> tuple[str, list[Any]]:
    """Rewrite ``%s`` / ``%(name)s`` outside quotes and comments as ``$N``;
    return the text and the positional values."""
    if params is None:
        return text, []
    values: list[Any] = []
    names: dict[str, int] = {}
    positional = iter(params) if not isinstance(params, Mapping) else None
    out: list[str] = []
    for kind, s, e in spans(text):
        chunk = text[s:e]
        if kind != "code":
            out.append(chunk)
            continue

        def repl(m: re.Match[str]) -> str:
            if m.group(0) == "%%":
                return "%"
            if m.group("name") is not None:
                if not isinstance(params, Mapping):
                    raise ProgrammingError("named placeholders need a mapping of parameters")
                name = m.group("name")
                if name not in params:
                    raise ProgrammingError(f"no value for parameter {name!r}", sqlstate="42P02")
                if name not in names:
                    values.append(params[name])
                    names[name] = len(values)
                return f"${names[name]}"
            if positional is None:
                raise ProgrammingError("positional placeholders need a sequence of parameters")
            try:
                values.append(next(positional))
            except StopIteration:
                raise ProgrammingError(
                    "not enough parameters for the placeholders", sqlstate="42P02"
                ) from None
            return f"${len(values)}"

        out.append(_PLACEHOLDER.sub(repl, chunk))
    if positional is not None and next(positional, _END) is not _END:
        raise ProgrammingError("more parameters than placeholders", sqlstate="42P02")
    return "".join(out), values


_END = object()


# --- connection and cursor -------------------------------------------------------------


def connect(path: str | Path | None = None, *, store: Any = None, **options: Any) -> Connection:
    """Open the store at ``path`` (or wrap an open ``store``, which the
    connection then does not close)."""
    if store is not None:
        return Connection(store, owns=False)
    if path is None:
        raise InterfaceError("connect() needs a store path")
    import fsql

    try:
        return Connection(fsql.connect(path, **options), owns=True)
    except FsqlError as e:
        raise _wrap(e) from None


class Connection:
    def __init__(self, store: Any, *, owns: bool) -> None:
        self.store = store
        self._owns = owns
        self.closed = False
        self.autocommit = True
        self._cursors: weakref.WeakSet[Cursor] = weakref.WeakSet()

    def close(self) -> None:
        for cur in list(self._cursors):
            cur.close()  # their results hold engine sessions of the store
        if not self.closed and self._owns:
            self.store.close()
        self.closed = True

    def commit(self) -> None:
        self._check()

    def rollback(self) -> None:
        self._check()

    def cursor(self) -> Cursor:
        self._check()
        cur = Cursor(self)
        self._cursors.add(cur)
        return cur

    def execute(self, operation: str, parameters: Any = None) -> Cursor:
        cur = self.cursor()
        cur.execute(operation, parameters)
        return cur

    def _check(self) -> None:
        if self.closed:
            raise InterfaceError("connection is closed")

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Cursor:
    """Results are read from the store as a stream of Arrow record batches
    (:meth:`fsql.api.Store.sql_stream`): rows are converted one batch at a
    time as they are fetched, so ``fetchone``/``fetchmany`` never hold the
    whole result. ``rowcount`` is known at once for a result of one batch,
    otherwise it is -1 until the last batch has been read."""

    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.description: list[tuple[Any, ...]] | None = None
        self.rowcount = -1
        self._schema = pa.schema([])
        self._reader: pa.RecordBatchReader | None = None
        self._ahead: list[pa.RecordBatch] = []  # read, not yet converted
        self._batch: pa.RecordBatch | None = None  # the batch rows are fetched from
        self._rows: list[tuple[Any, ...]] = []  # its rows, as tuples
        self._pos = 0
        self._read = 0  # rows read from the reader so far
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self._release()

    def _release(self) -> None:
        # dropping the reader releases the engine session it holds
        self._reader = self._batch = None
        self._ahead, self._rows, self._pos = [], [], 0

    def execute(self, operation: str, parameters: Any = None) -> Cursor:
        if self.closed:
            raise InterfaceError("cursor is closed")
        self.connection._check()
        self._release()
        text, values = to_dollar(operation, parameters)
        store = self.connection.store
        try:
            if hasattr(store, "sql_stream"):
                reader = store.sql_stream(text, values or None)
            else:  # a store object without streams: its table, read as one
                table = store.sql(text, values or None)
                reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
        except FsqlError as e:
            raise _wrap(e) from None
        self._set(reader)
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Any]) -> Cursor:
        total = 0
        for params in seq_of_parameters:
            self.execute(operation, params)
            total += max(self.rowcount, 0)
        self.rowcount = total
        self.description = None
        self._release()
        return self

    def _set(self, reader: pa.RecordBatchReader) -> None:
        self.rowcount = -1
        self._read = 0
        self._schema = reader.schema
        if len(reader.schema) == 0:
            self.description = None
            return
        self.description = [
            (f.name, _oid(f.type), None, None, None, None, f.nullable) for f in reader.schema
        ]
        self._reader = reader
        # the first batch, and whether another follows (else the count is known)
        for _ in range(2):
            batch = self._read_batch()
            if batch is None:
                break
            self._ahead.append(batch)

    def _read_batch(self) -> pa.RecordBatch | None:
        """The next batch from the reader; None at its end (which drops the
        reader and settles ``rowcount``)."""
        if self._reader is None:
            return None
        try:
            batch = self._reader.read_next_batch()
        except StopIteration:
            self._reader = None
            self.rowcount = self._read
            return None
        except FsqlError as e:
            self._release()
            raise _wrap(e.with_traceback(None)) from None
        self._read += batch.num_rows
        return batch

    def _next_rows(self) -> bool:
        """Convert the next batch to rows; False at the end of the result."""
        while True:
            batch = self._ahead.pop(0) if self._ahead else self._read_batch()
            if batch is None or batch.num_rows:
                break
        self._batch, self._pos = batch, 0
        if batch is None:
            self._rows = []
            return False
        columns = [c.to_pylist() for c in batch.columns]
        self._rows = list(zip(*columns, strict=True))
        return True

    def fetchone(self) -> tuple[Any, ...] | None:
        self._need_result()
        if self._pos >= len(self._rows) and not self._next_rows():
            return None
        row = self._rows[self._pos]
        self._pos += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        self._need_result()
        n = self.arraysize if size is None else size
        rows: list[tuple[Any, ...]] = []
        while len(rows) < n:
            if self._pos >= len(self._rows) and not self._next_rows():
                break
            take = self._rows[self._pos : self._pos + n - len(rows)]
            self._pos += len(take)
            rows.extend(take)
        return rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        self._need_result()
        rows = self._rows[self._pos :]
        while self._next_rows():
            rows.extend(self._rows)
        self._pos = len(self._rows)
        return rows

    def fetch_arrow_table(self) -> pa.Table:
        """The rows not fetched yet (all of them when none were) as Arrow,
        without row conversion."""
        self._need_result()
        batches: list[pa.RecordBatch] = []
        if self._batch is not None and self._pos < self._batch.num_rows:
            batches.append(self._batch.slice(self._pos))
        batches += self._ahead
        while (batch := self._read_batch()) is not None:
            batches.append(batch)
        self._batch, self._ahead, self._rows, self._pos = None, [], [], 0
        return pa.Table.from_batches(batches, schema=self._schema)

    def _need_result(self) -> None:
        if self.description is None:
            raise ProgrammingError("the last statement returned no rows")

    def setinputsizes(self, sizes: Any) -> None:
        pass

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        pass

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _oid(dtype: pa.DataType) -> int:
    try:
        return from_arrow(dtype).pg_oid
    except FsqlError:
        return 25
