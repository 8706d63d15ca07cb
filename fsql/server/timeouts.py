"""A session's ``statement_timeout``, as PostgreSQL reads it.

``SET``/``RESET`` go to the catalog mirror, a real PostgreSQL; the engine
never sees them. So that the engine honours the timeout too (as
``max_execution_time``, see :mod:`fsql.bind.confine`), the session reads the
statements that change it: ``SET [SESSION | LOCAL] statement_timeout
{= | TO} value | DEFAULT``, ``RESET statement_timeout``, ``RESET ALL``, and
``-c statement_timeout=...`` in the startup packet's ``options``.
"""

from __future__ import annotations

import re

_SET = re.compile(
    r"^\s*set\s+(?:session\s+|local\s+)?statement_timeout\s*(?:=|\bto\b)\s*(.+?)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_RESET = re.compile(r"^\s*reset\s+(?:statement_timeout|all)\s*;?\s*$", re.IGNORECASE)
_UNITS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_VALUE = re.compile(r"^([0-9]*\.?[0-9]+)\s*(us|ms|s|min|h|d)?$", re.IGNORECASE)
_OPTION = re.compile(r"(?:^|\s)(?:-c\s*|--)statement_timeout=(\S+)", re.IGNORECASE)

UNCHANGED = object()


def parse_value(text: str) -> int | object | None:
    """Milliseconds for a timeout value (``5000``, ``'5s'``, ``'1min'``);
    None for 0 or DEFAULT (no timeout); UNCHANGED when it does not parse
    (the mirror then reports the error and nothing changes)."""
    value = text.strip().strip("'\"").strip()
    if value.lower() == "default":
        return None
    m = _VALUE.match(value)
    if m is None:
        return UNCHANGED
    ms = float(m.group(1)) * _UNITS[(m.group(2) or "ms").lower()]
    return int(ms) or None


def timeout_change(statement: str) -> int | object | None:
    """The new timeout a statement sets (milliseconds, None for none), or
    UNCHANGED when it does not change it."""
    if _RESET.match(statement):
        return None
    m = _SET.match(statement)
    if m is None:
        return UNCHANGED
    return parse_value(m.group(1))


def from_options(options: str) -> int | None:
    """The timeout given in the startup packet's ``options``."""
    m = _OPTION.search(options or "")
    if m is None:
        return None
    found = parse_value(m.group(1))
    return None if found is UNCHANGED else found  # type: ignore[return-value]
