"""Parsers of the feature-store statements: SELECT FEATURES, feature-group
DDL, discovery and EXPLAIN. Nodes live in :mod:`fsql.sql.nodes`."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import ParseError
from sqlglot.parser import Parser
from sqlglot.tokens import TokenType

from fsql.sql.extensions import statement
from fsql.sql.grammar import metadata_pairs as _parse_metadata_pairs
from fsql.sql.grammar import name as _parse_name
from fsql.sql.grammar import string as _parse_string
from fsql.sql.grammar import version as _parse_version
from fsql.sql.nodes import (
    AlterFeatureGroup,
    CreateFeatureGroup,
    DescribeFeatureGroup,
    DropFeatureGroup,
    ExplainStatement,
    SearchFeatures,
    SelectFeatures,
    ShowFeatureGroups,
    ShowFeatures,
)

# Words after which a `SELECT features` is plain SQL selecting a column
# called "features".
_PLAIN_FOLLOWERS = {
    TokenType.FROM, TokenType.COMMA, TokenType.ALIAS, TokenType.SEMICOLON,
    TokenType.PLUS, TokenType.DASH, TokenType.STAR, TokenType.SLASH, TokenType.EQ,
    TokenType.DOT, TokenType.R_PAREN, TokenType.L_PAREN, TokenType.WHERE,
    TokenType.DPIPE, TokenType.LT, TokenType.GT,
}  # fmt: skip


def _fail(p: Parser, message: str) -> None:
    p.raise_error(message)


def _peek_words(p: Parser, *words: str) -> bool:
    index = p._index
    found = p._match_text_seq(*words)
    p._retreat(index)
    return bool(found)


# SELECT FEATURES ---------------------------------------------------------


def _parse_feature_item(p: Parser) -> exp.Expr:
    item = p._parse_column()
    if item is None:
        _fail(p, "Expected a feature name")
    assert item is not None
    if _peek_words(p, "AS", "OF"):
        return item
    if p._match(TokenType.ALIAS):
        return exp.alias_(item, _parse_name(p))
    return item


def _required_time(p: Parser, words: str) -> exp.Expr:
    value = p._parse_bitwise()
    if value is None:
        p.raise_error(f"{words} needs a time (TIMESTAMP '...', an expression or spine.column)")
        raise AssertionError("unreachable: the parser raises")  # for type checkers
    return value


def _parse_spine(p: Parser) -> exp.Expr:
    if p._match(TokenType.L_PAREN):
        query = p._parse_select(nested=True, parse_subquery_alias=False)
        if query is None:
            _fail(p, "Expected a query in parentheses")
        p._match_r_paren()
        relation: exp.Expr = exp.Subquery(this=query)
    else:
        func = p._parse_function()
        if func is not None:
            relation = func
        else:
            table = p._parse_table_parts()
            if table is None:
                _fail(p, "Expected a spine: a table, subquery or read_parquet(...)")
            assert table is not None
            relation = table
    if _peek_words(p, "AS", "OF"):
        return relation
    alias: exp.Identifier | None = None
    if p._match(TokenType.ALIAS) or (
        p._curr and p._curr.token_type in (TokenType.VAR, TokenType.IDENTIFIER)
    ):
        alias = _parse_name(p)
    if alias is not None:
        relation.set("alias", exp.TableAlias(this=alias))
    return relation


def parse_select_features(p: Parser) -> SelectFeatures:
    """Parse what follows ``SELECT FEATURES``; stops before a trailing ``WITH (``."""
    items = [_parse_feature_item(p)]
    while p._match(TokenType.COMMA):
        items.append(_parse_feature_item(p))
    node = SelectFeatures(expressions=items)
    if p._match(TokenType.FROM):
        node.set("spine", _parse_spine(p))
    if p._match_text_seq("AS", "OF"):
        node.set("as_of", _required_time(p, "AS OF"))
    if p._match_text_seq("FOR", "SYSTEM_TIME", "AS", "OF"):
        node.set("system_time", _required_time(p, "FOR SYSTEM_TIME AS OF"))
    where = p._parse_where()
    if where is not None:
        node.set("where", where)
    order = p._parse_order()
    if order is not None:
        node.set("order", order)
    limit = p._parse_limit()
    if limit is not None:
        node.set("limit", limit)
    offset = p._parse_offset()
    if offset is not None:
        node.set("offset", offset)
    return node


@statement("SELECT", "FEATURES")
def _select_features(p: Parser) -> exp.Expr | None:
    if p._curr is None or p._curr.token_type in _PLAIN_FOLLOWERS:
        return None  # plain SQL: a column called "features"
    return parse_select_features(p)


# feature-group DDL ---------------------------------------------------------


@statement("CREATE", "FEATURE", "GROUP")
def _create_feature_group(p: Parser) -> exp.Expr:
    exists = bool(p._match_text_seq("IF", "NOT", "EXISTS"))
    node = CreateFeatureGroup(this=_parse_name(p), exists=exists)
    version = _parse_version(p)
    if version is not None:
        node.set("version", version)
    if p._match(TokenType.L_PAREN, advance=False):
        schema = p._parse_schema()
        columns = [
            c for c in (schema.expressions if schema else []) if isinstance(c, exp.ColumnDef)
        ]
        if not columns:
            _fail(p, "Expected column definitions")
        node.set("columns", columns)
    while True:
        if p._match(TokenType.PRIMARY_KEY) or p._match_text_seq("PRIMARY", "KEY"):
            node.set("primary_key", p._parse_wrapped_id_vars())
        elif p._match_text_seq("EVENT", "TIME"):
            node.set("event_time", _parse_name(p))
        elif p._match_text_seq("ONLINE"):
            node.set("online", exp.true())
        elif p._match_text_seq("DESCRIPTION"):
            node.set("description", _parse_string(p, "DESCRIPTION"))
        elif p._match_text_seq("METADATA"):
            node.set("metadata", _parse_metadata_pairs(p))
        else:
            break
    if p._match(TokenType.ALIAS):
        query = p._parse_select()
        if query is None:
            _fail(p, "Expected a query after AS")
        node.set("query", query)
    if not node.args.get("primary_key"):
        _fail(p, "CREATE FEATURE GROUP needs PRIMARY KEY (column, ...)")
    if not node.args.get("columns") and not node.args.get("query"):
        _fail(p, "CREATE FEATURE GROUP needs (column type, ...) or AS SELECT ...")
    return node


@statement("DROP", "FEATURE", "GROUP")
def _drop_feature_group(p: Parser) -> exp.Expr:
    exists = bool(p._match_text_seq("IF", "EXISTS"))
    node = DropFeatureGroup(this=_parse_name(p), exists=exists)
    version = _parse_version(p)
    if version is not None:
        node.set("version", version)
    return node


@statement("ALTER", "FEATURE", "GROUP")
def _alter_feature_group(p: Parser) -> exp.Expr:
    name = _parse_name(p)
    version = _parse_version(p)
    if p._match_text_seq("SET", "METADATA"):
        return AlterFeatureGroup(
            this=name, version=version, action="set_metadata", values=_parse_metadata_pairs(p)
        )
    if p._match_text_seq("UNSET", "METADATA"):
        keys = p._parse_wrapped_csv(lambda: _parse_string(p, "a metadata key"))
        return AlterFeatureGroup(this=name, version=version, action="unset_metadata", values=keys)
    if p._match_text_seq("SET", "DESCRIPTION"):
        return AlterFeatureGroup(
            this=name, version=version, action="set_description",
            values=[_parse_string(p, "DESCRIPTION")],
        )  # fmt: skip
    if p._match_text_seq("SET", "ONLINE"):
        return AlterFeatureGroup(this=name, version=version, action="set_online")
    if p._match_text_seq("SET", "OFFLINE"):
        return AlterFeatureGroup(this=name, version=version, action="set_offline")
    _fail(p, "Expected SET METADATA, UNSET METADATA, SET DESCRIPTION, SET ONLINE or SET OFFLINE")
    raise AssertionError


# discovery ---------------------------------------------------------------


def _parse_like(p: Parser) -> exp.Literal | None:
    if p._match(TokenType.LIKE) or p._match(TokenType.ILIKE):
        return _parse_string(p, "LIKE")
    return None


@statement("SHOW", "FEATURE", "GROUPS")
def _show_feature_groups(p: Parser) -> exp.Expr:
    return ShowFeatureGroups(like=_parse_like(p))


@statement("SHOW", "FEATURES")
def _show_features(p: Parser) -> exp.Expr:
    node = ShowFeatures()
    if p._match(TokenType.FROM) or p._match(TokenType.IN):
        node.set("this", _parse_name(p))
    node.set("like", _parse_like(p))
    return node


@statement("DESCRIBE", "FEATURE", "GROUP")
def _describe_feature_group(p: Parser) -> exp.Expr:
    node = DescribeFeatureGroup(this=_parse_name(p))
    version = _parse_version(p)
    if version is not None:
        node.set("version", version)
    return node


@statement("SEARCH", "FEATURES")
def _search_features(p: Parser) -> exp.Expr:
    return SearchFeatures(this=_parse_string(p, "SEARCH FEATURES"))


@statement("SHOW")
def _show_setting(p: Parser) -> exp.Expr:
    """Any other SHOW (``SHOW search_path``, ``SHOW transaction isolation
    level``): kept as a command for the session layer to answer."""
    words = []
    while p._curr and p._curr.token_type != TokenType.SEMICOLON:
        words.append(p._curr.text)
        p._advance()
    if not words:
        _fail(p, "Expected what to SHOW")
    return exp.Command(this="SHOW", expression=exp.Literal.string(" ".join(words)))


@statement("EXPLAIN")
def _explain(p: Parser) -> exp.Expr:
    inner = p._parse_statement()
    if inner is None:
        _fail(p, "Expected a statement after EXPLAIN")
    return ExplainStatement(this=inner)


__all__ = ["ParseError", "parse_select_features"]
