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

    def close(self) -> None:
        if not self.closed and self._owns:
            self.store.close()
        self.closed = True

    def commit(self) -> None:
        self._check()

    def rollback(self) -> None:
        self._check()

    def cursor(self) -> Cursor:
        self._check()
        return Cursor(self)

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
    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.description: list[tuple[Any, ...]] | None = None
        self.rowcount = -1
        self._table: pa.Table | None = None
        self._rows: list[tuple[Any, ...]] = []
        self._pos = 0
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self._table = None
        self._rows = []

    def execute(self, operation: str, parameters: Any = None) -> Cursor:
        if self.closed:
            raise InterfaceError("cursor is closed")
        self.connection._check()
        text, values = to_dollar(operation, parameters)
        try:
            table = self.connection.store.sql(text, values or None)
        except FsqlError as e:
            raise _wrap(e) from None
        self._set(table)
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Any]) -> Cursor:
        total = 0
        for params in seq_of_parameters:
            self.execute(operation, params)
            total += max(self.rowcount, 0)
        self.rowcount = total
        self.description = None
        return self

    def _set(self, table: pa.Table) -> None:
        self._table = table
        self._pos = 0
        if table.num_columns == 0:
            self.description = None
            self.rowcount = -1
            self._rows = []
            return
        self.description = [
            (f.name, _oid(f.type), None, None, None, None, f.nullable) for f in table.schema
        ]
        self.rowcount = table.num_rows
        columns = [c.to_pylist() for c in table.columns]
        self._rows = list(zip(*columns, strict=True))

    def fetchone(self) -> tuple[Any, ...] | None:
        self._need_result()
        if self._pos >= len(self._rows):
            return None
        row = self._rows[self._pos]
        self._pos += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        self._need_result()
        n = self.arraysize if size is None else size
        rows = self._rows[self._pos : self._pos + n]
        self._pos += len(rows)
        return rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        self._need_result()
        rows = self._rows[self._pos :]
        self._pos = len(self._rows)
        return rows

    def fetch_arrow_table(self) -> pa.Table:
        """The whole result as Arrow (no row conversion)."""
        self._need_result()
        assert self._table is not None
        return self._table

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
