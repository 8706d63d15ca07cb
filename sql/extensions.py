"""The registry of FSQL statements beyond plain PostgreSQL.

A module declares statement nodes and registers a parse function under the
statement's leading keywords; the dialect tries the longest matching
keyword sequence first and falls back to plain PostgreSQL parsing. A parse
function receives the sqlglot parser positioned after the keywords; it may
return None to say "not mine" (the parser then backs out and tries the next
candidate), which is how ``SELECT features FROM t`` stays plain SQL.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from sqlglot import exp
from sqlglot.parser import Parser

StatementParser = Callable[[Parser], exp.Expr | None]

_STATEMENTS: dict[tuple[str, ...], StatementParser] = {}

# Modules whose import registers statements. Listed here, not discovered, so
# what the dialect accepts is visible in one place.
EXTENSION_MODULES: tuple[str, ...] = (
    "fsql.sql.feature_statements",
    "fsql.sql.connector_statements",
    "fsql.sql.training_statements",
)

_loaded = False


def statement(*words: str) -> Callable[[StatementParser], StatementParser]:
    """Register ``fn`` as the parser of statements starting with ``words``."""
    key = tuple(w.upper() for w in words)

    def register(fn: StatementParser) -> StatementParser:
        if key in _STATEMENTS and _STATEMENTS[key] is not fn:
            raise ValueError(f"statement {' '.join(key)} is registered twice")
        _STATEMENTS[key] = fn
        return fn

    return register


def load() -> None:
    global _loaded
    if _loaded:
        return
    for module in EXTENSION_MODULES:
        importlib.import_module(module)
    _loaded = True


def parse_registered(parser: Parser) -> exp.Expr | None:
    """Parse the statement at the parser's position if a registered one
    matches; otherwise leave the position untouched and return None."""
    load()
    start = parser._index
    for words in sorted(_STATEMENTS, key=len, reverse=True):
        if parser._match_text_seq(*words):
            node = _STATEMENTS[words](parser)
            if node is not None:
                return node
        parser._retreat(start)
    return None


def registered() -> list[str]:
    load()
    return sorted(" ".join(k) for k in _STATEMENTS)


def leading_words() -> frozenset[str]:
    """The first words of the registered statements (EXPLAIN, SEARCH, ...)."""
    load()
    return frozenset(k[0] for k in _STATEMENTS)
