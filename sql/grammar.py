"""Small parsing pieces shared by the statement modules: names, quoted
strings, ``VERSION n`` and ``('key' = 'value', ...)`` lists."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.parser import Parser
from sqlglot.tokens import TokenType


def name(p: Parser, what: str = "a name") -> exp.Identifier:
    ident = p._parse_id_var(any_token=False)
    if not isinstance(ident, exp.Identifier):
        p.raise_error(f"Expected {what}")
    assert isinstance(ident, exp.Identifier)
    return ident


def string(p: Parser, what: str) -> exp.Literal:
    lit = p._parse_string()
    if not isinstance(lit, exp.Literal) or not lit.is_string:
        p.raise_error(f"Expected a quoted string for {what}")
    assert isinstance(lit, exp.Literal)
    return lit


def version(p: Parser) -> exp.Expr | None:
    """``VERSION n`` if it comes next."""
    if p._match_text_seq("VERSION"):
        num = p._parse_number()
        if num is None:
            p.raise_error("Expected a version number after VERSION")
        return num
    return None


def metadata_pairs(p: Parser) -> list[exp.Expr]:
    """``('key' = 'value', ...)`` as a list of two-item tuples."""

    def pair() -> exp.Expr:
        key = string(p, "a metadata key")
        if not p._match(TokenType.EQ):
            p.raise_error("Expected = after the metadata key")
        return exp.Tuple(expressions=[key, string(p, "a metadata value")])

    return p._parse_wrapped_csv(pair)
