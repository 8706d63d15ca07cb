"""The FSQL dialect: PostgreSQL syntax plus the feature-store statements.

>>> [type(s).__name__ for s in parse("SELECT 1; SHOW FEATURE GROUPS")]
['Select', 'ShowFeatureGroups']

Syntax errors read as PostgreSQL's do: ``syntax error at or near "TOKEN"``
(or ``at end of input``), SQLSTATE 42601 and the 1-based character position
of the token, followed by a short explanation when there is one.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ParseError, TokenError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.parsers.postgres import PostgresParser
from sqlglot.tokens import Token, TokenType

from fsql.errors import SQLSyntaxError
from fsql.sql import extensions

# The words a PostgreSQL statement can start with; a statement starting with
# any other word is a syntax error at that word, as in PostgreSQL (sqlglot
# would otherwise read ``SELEC * FROM t`` as the expression ``SELEC * ...``).
PG_STATEMENT_WORDS = frozenset(
    {
        "ABORT", "ALTER", "ANALYZE", "ANALYSE", "BEGIN", "CALL", "CHECKPOINT", "CLOSE", "CLUSTER",
        "COMMENT", "COMMIT", "COPY", "CREATE", "DEALLOCATE", "DECLARE", "DELETE", "DISCARD", "DO",
        "DROP", "END", "EXECUTE", "EXPLAIN", "FETCH", "GRANT", "IMPORT", "INSERT", "LISTEN", "LOAD",
        "LOCK", "MERGE", "MOVE", "NOTIFY", "PREPARE", "REASSIGN", "REFRESH", "REINDEX", "RELEASE",
        "RESET", "REVOKE", "ROLLBACK", "SAVEPOINT", "SECURITY", "SELECT", "SET", "SHOW", "START",
        "TABLE", "TRUNCATE", "UNLISTEN", "UPDATE", "VACUUM", "VALUES", "WITH",
    }
)  # fmt: skip

# meta key of a plain ``SELECT features FROM ...``: the 1-based position of
# its FROM (see :func:`bare_features_from`).
BARE_FEATURES = "fsql_bare_features_from"


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
            bare_from = _bare_features_from(self._tokens[self._index : self._index + 3])
            node = extensions.parse_registered(self)
            if node is not None:
                return node
            node = super()._parse_statement()
            if bare_from is not None and isinstance(node, exp.Select):
                node.meta[BARE_FEATURES] = bare_from
            return node

        def raise_error(self, message: str, token: Token | None = None) -> None:  # type: ignore[override]
            # Record where the error is in the text and whether the statement
            # ended before it (sqlglot then points at the last token read).
            at_end = not token and not self._curr  # past the end: a falsy sentinel
            used = token or self._curr or self._prev
            try:
                super().raise_error(message, token)  # type: ignore[arg-type]
            except ParseError as e:
                _annotate(e, used, at_end)
                raise
            if self.errors:
                _annotate(self.errors[-1], used, at_end)


def _annotate(error: ParseError, token: Token | None, at_end: bool) -> None:
    if error.errors and token is not None:
        error.errors[0]["fsql_token"] = (token.start, token.end, at_end)


def _bare_features_from(tokens: list[Token]) -> int | None:
    """Position of FROM in ``SELECT FEATURES FROM ...`` (unquoted FEATURES)."""
    if (
        len(tokens) == 3
        and tokens[0].token_type == TokenType.SELECT
        and tokens[1].token_type == TokenType.VAR
        and tokens[1].text.upper() == "FEATURES"
        and tokens[2].token_type == TokenType.FROM
    ):
        return tokens[2].start + 1
    return None


def bare_features_from(statement: exp.Expr) -> int | None:
    """For ``SELECT FEATURES FROM spine`` (no feature named), which parses as
    plain SQL selecting a column ``features``: the 1-based position of FROM.
    When that column does not exist the statement meant SELECT FEATURES, and
    the error to report is ``SELECT FEATURES names no feature`` (42601) there."""
    value = statement.meta.get(BARE_FEATURES)
    return int(value) if value is not None else None


def position_of(text: str, line: int, col: int) -> int:
    """1-based character offset of (line, col) as sqlglot reports them."""
    lines = text.split("\n")
    offset = sum(len(lines[i]) + 1 for i in range(max(0, min(line - 1, len(lines)))))
    return offset + max(col, 1)


# --- messages ---------------------------------------------------------------

_TOKEN = re.compile(r"<Token token_type: TokenType\.(\w+), text: (.*?), line: .*?>")
# sqlglot's internal wording that says nothing to a user
_NOISE = re.compile(
    r"Required keyword: .*|Unexpected keyword: .*|Invalid expression / Unexpected token"
    r"|.*<class '.*"
)


def _token_text(m: re.Match[str]) -> str:
    return "end of input" if m.group(1) == "SENTINEL" else f'"{m.group(2)}"'


def _explanation(description: str) -> str:
    """sqlglot's or our description, short and without Python class names."""
    desc = re.sub(r"\s*but got <Token .*?>", "", description)
    desc = _TOKEN.sub(_token_text, desc).strip().rstrip(".")
    if not desc or _NOISE.fullmatch(desc):
        return ""
    return desc


def _near(text: str, tokens: list[Token], start: int, end: int, at_end: bool) -> tuple[str, int]:
    """('at or near "x"' or 'at end of input', 1-based position)."""
    if at_end:
        # the statement ended before what it needed: the next token (a
        # semicolon) or the end of the text
        following = next((t for t in tokens if t.start > end), None)
        if following is None:
            return "at end of input", len(text) + 1
        start, end = following.start, following.end
    return f'at or near "{text[start : end + 1]}"', start + 1


def _syntax_error(text: str, tokens: list[Token], e: ParseError) -> SQLSyntaxError:
    err = e.errors[0] if e.errors else {}
    explanation = _explanation(err.get("description") or str(e))
    where = err.get("fsql_token")
    if where is not None:
        near, position = _near(text, tokens, *where)
    else:
        line, col = err.get("line") or 1, err.get("col") or 1
        token = (err.get("highlight") or "").strip()
        near = f'at or near "{token}"' if token else "at end of input"
        position = position_of(text, line, col)
    message = f"syntax error {near}"
    if explanation:
        message += f": {explanation}"
    return SQLSyntaxError(message, position=position)


def _check_first_words(text: str, tokens: list[Token]) -> None:
    """A statement starts with a statement keyword, as in PostgreSQL."""
    leading = extensions.leading_words()
    first = True
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            first = True
            continue
        if first:
            first = False
            word = token.text.upper()
            if token.token_type == TokenType.L_PAREN or (
                token.token_type not in (TokenType.IDENTIFIER, TokenType.STRING)
                and (word in PG_STATEMENT_WORDS or word in leading)
            ):
                continue
            raise SQLSyntaxError(
                f'syntax error at or near "{text[token.start : token.end + 1]}"',
                position=token.start + 1,
            )


# --- tokenizer errors -------------------------------------------------------

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")


def _ident_before(text: str, i: int) -> bool:
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_$")


def unterminated(text: str) -> tuple[str, int] | None:
    """(what, 0-based start) of an unterminated string, quoted identifier,
    dollar-quoted string or /* comment in ``text``, as PostgreSQL's lexer
    finds them; None if every one is closed."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "-" and text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            if depth:
                return "unterminated /* comment", i
            i = j
        elif c == '"':
            j = i + 1
            while j < n and not (text[j] == '"' and not text.startswith('""', j)):
                j += 2 if text.startswith('""', j) else 1
            if j >= n:
                return "unterminated quoted identifier", i
            i = j + 1
        elif c == "'" or (
            not _ident_before(text, i)
            and (
                (c in "eEbBxXnN" and text.startswith("'", i + 1))
                or (c in "uU" and text.startswith("&'", i + 1))
            )
        ):
            backslash = c in "eE"
            j = text.index("'", i) + 1
            while j < n:
                if (backslash and text[j] == "\\") or text.startswith("''", j):
                    j += 2
                elif text[j] == "'":
                    break
                else:
                    j += 1
            if j >= n:
                return "unterminated quoted string", i
            i = j + 1
        elif c == "$" and not _ident_before(text, i) and (m := _DOLLAR_TAG.match(text, i)):
            close = text.find(m.group(0), m.end())
            if close < 0:
                return "unterminated dollar-quoted string", i
            i = close + len(m.group(0))
        elif c.isalnum() or c == "_":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] in "_$"):
                j += 1
            i = j
        else:
            i += 1
    return None


def _token_error(text: str, e: TokenError) -> SQLSyntaxError:
    found = unterminated(text)
    if found is not None:
        what, start = found
        return SQLSyntaxError(f'{what} at or near "{text[start:]}"', position=start + 1)
    cause = e.__cause__
    detail = str(cause) if isinstance(cause, TokenError) else None
    return SQLSyntaxError("syntax error: the statement text cannot be read", detail=detail)


# --- entry point ------------------------------------------------------------


def parse(text: str) -> list[exp.Expr]:
    """Parse FSQL text into statement nodes; syntax errors carry SQLSTATE
    42601, the offending token and its position."""
    dialect = FSQL()
    try:
        tokens = dialect.tokenize(text)
    except TokenError as e:
        raise _token_error(text, e) from None
    _check_first_words(text, tokens)
    try:
        statements = dialect.parser().parse(tokens, text)
    except ParseError as e:
        raise _syntax_error(text, tokens, e) from None
    # PostgreSQL folds unquoted identifiers to lower case ("Amount" stays as is)
    return [normalize_identifiers(s, dialect="postgres") for s in statements if s is not None]
