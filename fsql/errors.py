"""One exception base for every layer; each error carries a SQLSTATE.

The Postgres-wire server turns an :class:`FsqlError` into an ErrorResponse
with the same SQLSTATE, message, position and hint, so what a Python user
sees and what psql shows are the same words.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any


class FsqlError(Exception):
    """Base of all fsql errors.

    ``sqlstate`` is the five-character PostgreSQL error code, ``position`` the
    1-based character offset of the offending token in the statement text (or
    None), ``hint`` a sentence that says how to fix it.
    """

    sqlstate = "XX000"

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str | None = None,
        position: int | None = None,
        hint: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if sqlstate is not None:
            self.sqlstate = sqlstate
        self.position = position
        self.hint = hint
        self.detail = detail

    def __str__(self) -> str:
        parts = [f"[{self.sqlstate}] {self.message}"]
        if self.position is not None:
            parts.append(f"(at position {self.position})")
        text = " ".join(parts)
        if self.detail:
            text += f"\nDETAIL: {self.detail}"
        if self.hint:
            text += f"\nHINT: {self.hint}"
        return text


class SQLSyntaxError(FsqlError):
    sqlstate = "42601"


class UndefinedObject(FsqlError):
    """An unknown feature group, training dataset, connector or project."""

    sqlstate = "42P01"


class UndefinedColumn(FsqlError):
    sqlstate = "42703"


class AmbiguousColumn(FsqlError):
    sqlstate = "42702"


class DuplicateColumn(FsqlError):
    sqlstate = "42701"


class DuplicateObject(FsqlError):
    sqlstate = "42P07"


class DatatypeMismatch(FsqlError):
    sqlstate = "42804"


class InvalidParameter(FsqlError):
    """A bad option, argument or value supplied by the user."""

    sqlstate = "22023"


class NotNullViolation(FsqlError):
    sqlstate = "23502"


class UniqueViolation(FsqlError):
    sqlstate = "23505"


class FeatureNotSupported(FsqlError):
    sqlstate = "0A000"


class StoreInUse(FsqlError):
    """Another process holds the embedded store folder."""

    sqlstate = "55006"


class ConnectionFailure(FsqlError):
    sqlstate = "08006"


class EngineError(FsqlError):
    """The execution engine rejected generated or user SQL. Its SQLSTATE
    comes from the ClickHouse error code in the message where one maps
    (``Code: 47`` unknown identifier is 42703), else XX000."""

    sqlstate = "XX000"

    def __init__(self, message: str, *, sqlstate: str | None = None, **kw: Any) -> None:
        state = sqlstate or clickhouse_sqlstate(message)
        code = re.match(r"\s*Code:\s*(\d+)", message)
        worded = _POSTGRES_WORDING.get(int(code.group(1))) if code and sqlstate is None else None
        if worded is not None and not message.startswith(worded):
            # PostgreSQL's words first; the engine's reason after them
            reason = re.sub(r"^\s*Code:\s*\d+\.\s*(DB::Exception:\s*)?", "", message)
            message = f"{worded} ({reason.split('. ')[0].rstrip('.')})"
        super().__init__(message, sqlstate=state, **kw)


# what PostgreSQL says for the limits a statement can run into
_POSTGRES_WORDING = {
    159: "canceling statement due to statement timeout",  # TIMEOUT_EXCEEDED
    394: "canceling statement due to user request",  # QUERY_WAS_CANCELLED
    241: "out of memory: the statement needs more than the per-query memory limit",
}


_CLICKHOUSE_CODES = {
    47: "42703",  # UNKNOWN_IDENTIFIER
    16: "42703",  # NO_SUCH_COLUMN_IN_TABLE
    60: "42P01",  # UNKNOWN_TABLE
    81: "3D000",  # UNKNOWN_DATABASE
    62: "42601",  # SYNTAX_ERROR
    46: "42883",  # UNKNOWN_FUNCTION
    42: "42883",  # NUMBER_OF_ARGUMENTS_DOESNT_MATCH
    43: "42804",  # ILLEGAL_TYPE_OF_ARGUMENT
    53: "42804",  # TYPE_MISMATCH
    386: "42804",  # NO_COMMON_TYPE
    6: "22P02",  # CANNOT_PARSE_TEXT
    27: "22P02",  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38: "22007",  # CANNOT_PARSE_DATE
    41: "22007",  # CANNOT_PARSE_DATETIME
    69: "22003",  # ARGUMENT_OUT_OF_BOUND
    70: "22003",  # CANNOT_CONVERT_TYPE (a value that does not fit)
    407: "22003",  # DECIMAL_OVERFLOW
    153: "22012",  # ILLEGAL_DIVISION
    159: "57014",  # TIMEOUT_EXCEEDED
    394: "57014",  # QUERY_WAS_CANCELLED
    241: "53200",  # MEMORY_LIMIT_EXCEEDED
    215: "42803",  # NOT_AN_AGGREGATE
    184: "42803",  # ILLEGAL_AGGREGATION
}


def clickhouse_sqlstate(message: str) -> str | None:
    """The SQLSTATE for a ClickHouse error message (``Code: N. ...``)."""
    m = re.match(r"\s*Code:\s*(\d+)", message)
    return _CLICKHOUSE_CODES.get(int(m.group(1))) if m else None


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates that look most like ``name`` (for 'did you mean')."""
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    found = closest(name, candidates)
    if not found:
        return None
    return "Did you mean " + " or ".join(repr(c) for c in found) + "?"


def position_of(node: object) -> int | None:
    """1-based offset in the statement text of the first token of a parsed
    (sqlglot) node, when the parser recorded one."""
    walk = getattr(node, "walk", None)
    starts = [
        int(start)
        for sub in (walk() if walk is not None else ())
        if (start := (getattr(sub, "_meta", None) or {}).get("start")) is not None
    ]
    return min(starts) + 1 if starts else None
