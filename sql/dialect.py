"""The FSQL dialect: PostgreSQL syntax plus the feature-store statements.

>>> [type(s).__name__ for s in parse("SELECT 1; SHOW FEATURE GROUPS")]
['Select', 'ShowFeatureGroups']
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ParseError, TokenError
from sqlglot.parsers.postgres import PostgresParser
from sqlglot.tokens import TokenType

from fsql.errors import SQLSyntaxError
from fsql.sql import extensions


class FSQL(Postgres):
    class Tokenizer(Postgres.Tokenizer):
        # SHOW and EXPLAIN are statements of ours (SHOW FEATURE GROUPS, EXPLAIN
        # SELECT FEATURES); the base tokenizer would swallow what follows them
        # into one opaque string.
        COMMANDS = Postgres.Tokenizer.COMMANDS - {TokenType.SHOW}
        KEYWORDS = {**Postgres.Tokenizer.KEYWORDS, "EXPLAIN": TokenType.VAR}

    class Parser(PostgresParser):
        def _parse_statement(self) -> exp.Expr | None:
            if not self._curr:
                return None
            node = extensions.parse_registered(self)
            if node is not None:
                return node
            return super()._parse_statement()


_TOKEN = re.compile(r"<Token token_type: TokenType\.(\w+), text: (.*?), line: .*?>")


def _token_text(m: re.Match[str]) -> str:
    return "end of input" if m.group(1) == "SENTINEL" else f'"{m.group(2)}"'


def position_of(text: str, line: int, col: int) -> int:
    """1-based character offset of (line, col) as sqlglot reports them."""
    lines = text.split("\n")
    offset = sum(len(lines[i]) + 1 for i in range(max(0, min(line - 1, len(lines)))))
    return offset + max(col, 1)


def parse(text: str) -> list[exp.Expr]:
    """Parse FSQL text into statement nodes; syntax errors carry SQLSTATE
    42601, the offending token and its position."""
    try:
        statements = FSQL().parse(text)
    except ParseError as e:
        err = e.errors[0] if e.errors else {}
        line, col = err.get("line") or 1, err.get("col") or 1
        token = (err.get("highlight") or "").strip()
        desc = _TOKEN.sub(_token_text, err.get("description") or str(e))
        near = f' at or near "{token}"' if token else ""
        raise SQLSyntaxError(
            f"syntax error{near}: {desc}", position=position_of(text, line, col)
        ) from None
    except TokenError as e:
        raise SQLSyntaxError(f"syntax error: {e}") from None
    return [s for s in statements if s is not None]
