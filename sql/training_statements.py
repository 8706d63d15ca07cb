"""Training-dataset statements of the FSQL dialect.

::

    CREATE TRAINING DATASET name [VERSION n] [DESCRIPTION '...']
      AS SELECT FEATURES ... | AS SELECT ...
      [WITH (format = 'parquet', splits = 'train:0.8,test:0.2', seed = 7, ...)]
    SHOW TRAINING DATASETS [LIKE 'pattern']
    DESCRIBE TRAINING DATASET name [VERSION n]
    DROP TRAINING DATASET [IF EXISTS] name [VERSION n]
    REBUILD TRAINING DATASET name [VERSION n]

The query's text is kept (``query_text``) because the catalog records it and
a rebuild re-runs it.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.parser import Parser
from sqlglot.tokens import TokenType

from fsql.sql.extensions import statement
from fsql.sql.grammar import name
from fsql.sql.grammar import string as _string
from fsql.sql.grammar import version as _version

# Words after which ``SELECT features`` selects a column called "features".
_PLAIN_FOLLOWERS = {
    TokenType.FROM, TokenType.COMMA, TokenType.ALIAS, TokenType.SEMICOLON,
    TokenType.PLUS, TokenType.DASH, TokenType.STAR, TokenType.SLASH, TokenType.EQ,
    TokenType.DOT, TokenType.R_PAREN, TokenType.WHERE, TokenType.DPIPE,
}  # fmt: skip


class CreateTrainingDataset(exp.Expression):
    arg_types = {
        "this": True,  # name
        "version": False,
        "description": False,
        "query": False,  # SelectFeatures (parsed); None for a plain SELECT
        "query_text": True,  # the query as written
        "query_position": False,  # 0-based offset of the query in the statement text
        "options": False,  # list of exp.Tuple(key Identifier, value)
        "parameters": False,  # the query has $n / ? parameters
    }


class ShowTrainingDatasets(exp.Expression):
    arg_types = {"like": False}


class DescribeTrainingDataset(exp.Expression):
    arg_types = {"this": True, "version": False}


class DropTrainingDataset(exp.Expression):
    arg_types = {"this": True, "version": False, "exists": False}


class RebuildTrainingDataset(exp.Expression):
    arg_types = {"this": True, "version": False}


def _name(p: Parser) -> exp.Identifier:
    return name(p, "a training dataset name")


def _options_start(p: Parser) -> int:
    """Index of the ``WITH (`` that ends the statement (the options), or of
    the statement's end when there is none. A plain SELECT would read a
    trailing ``WITH (...)`` as table hints, so the query's extent is found
    first."""
    tokens = p._tokens
    i = p._index
    depth = 0
    candidate = None
    while i < len(tokens):
        t = tokens[i].token_type
        if t == TokenType.L_PAREN:
            depth += 1
        elif t == TokenType.R_PAREN:
            depth -= 1
        elif t == TokenType.SEMICOLON and depth == 0:
            break
        elif (
            t == TokenType.WITH
            and depth == 0
            and i + 1 < len(tokens)
            and tokens[i + 1].token_type == TokenType.L_PAREN
        ):
            candidate = i
        i += 1
    return candidate if candidate is not None else i


def _parse_options(p: Parser) -> list[exp.Expr]:
    def pair() -> exp.Expr:
        key = p._parse_id_var(any_token=True)
        if key is None:
            p.raise_error("Expected an option name")
        if not p._match(TokenType.EQ):
            p.raise_error("Expected = after the option name")
        value = p._parse_bitwise()
        if value is None:
            p.raise_error("Expected an option value")
        return exp.Tuple(expressions=[key, value])

    return p._parse_wrapped_csv(pair)


@statement("CREATE", "TRAINING", "DATASET")
def _create_training_dataset(p: Parser) -> exp.Expr:
    node = CreateTrainingDataset(this=_name(p))
    while True:
        if p._match_text_seq("VERSION", advance=False):
            node.set("version", _version(p))
        elif p._match_text_seq("DESCRIPTION"):
            node.set("description", _string(p, "DESCRIPTION"))
        else:
            break
    if not p._match(TokenType.ALIAS):
        p.raise_error("Expected AS SELECT FEATURES ...")
    if p._curr is None:
        p.raise_error("Expected a query after AS")
    first = p._curr
    first_index = p._index
    assert first is not None
    start = p._index
    features = bool(p._match_text_seq("SELECT", "FEATURES"))
    if features and (p._curr is None or p._curr.token_type in _PLAIN_FOLLOWERS):
        p._retreat(start)  # plain SQL selecting a column called "features"
        features = False
    if features:
        from fsql.sql.feature_statements import parse_select_features

        node.set("query", parse_select_features(p))
    else:
        end = _options_start(p)
        if end == p._index:
            p.raise_error("Expected a query after AS")
        p._advance(end - p._index)
    last = p._prev
    assert last is not None
    text = p.sql[first.start : last.end + 1] if p.sql else ""
    node.set("query_text", exp.Literal.string(text))
    params = (TokenType.PARAMETER, TokenType.PLACEHOLDER)
    if any(t.token_type in params for t in p._tokens[first_index : p._index]):
        node.set("parameters", exp.true())
    node.set("query_position", exp.Literal.number(first.start))
    if p._match(TokenType.WITH):
        node.set("options", _parse_options(p))
    return node


@statement("SHOW", "TRAINING", "DATASETS")
def _show_training_datasets(p: Parser) -> exp.Expr:
    like = None
    if p._match(TokenType.LIKE) or p._match(TokenType.ILIKE):
        like = _string(p, "LIKE")
    return ShowTrainingDatasets(like=like)


@statement("DESCRIBE", "TRAINING", "DATASET")
def _describe_training_dataset(p: Parser) -> exp.Expr:
    node = DescribeTrainingDataset(this=_name(p))
    node.set("version", _version(p))
    return node


@statement("DROP", "TRAINING", "DATASET")
def _drop_training_dataset(p: Parser) -> exp.Expr:
    exists = bool(p._match_text_seq("IF", "EXISTS"))
    node = DropTrainingDataset(this=_name(p), exists=exists)
    node.set("version", _version(p))
    return node


@statement("REBUILD", "TRAINING", "DATASET")
def _rebuild_training_dataset(p: Parser) -> exp.Expr:
    node = RebuildTrainingDataset(this=_name(p))
    node.set("version", _version(p))
    return node
