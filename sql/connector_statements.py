"""Parsers of the connector statements and of on-demand feature groups.

```
CREATE CONNECTOR [IF NOT EXISTS] crm TYPE postgres
  OPTIONS (host '127.0.0.1', port '5432', database 'crm', user 'app',
           password_env 'CRM_PASSWORD') [DESCRIPTION '...'];
SHOW CONNECTORS [LIKE 'c%'];
DESCRIBE CONNECTOR crm;
ALTER CONNECTOR crm SET OPTIONS (password_env 'CRM_PASSWORD_2') [SET DESCRIPTION '...'];
DROP CONNECTOR [IF EXISTS] crm;
CREATE ON DEMAND FEATURE GROUP [IF NOT EXISTS] profile [VERSION n] CONNECTOR crm
  PRIMARY KEY (customer_id) [EVENT TIME updated_at] [DESCRIPTION '...']
  [METADATA ('k' = 'v', ...)]
  AS SELECT id AS customer_id, age, updated_at FROM customers;
```
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.parser import Parser
from sqlglot.tokens import TokenType

from fsql.sql.extensions import statement
from fsql.sql.grammar import metadata_pairs as _metadata
from fsql.sql.grammar import name as _name
from fsql.sql.grammar import string as _string


class CreateConnector(exp.Expression):
    arg_types = {
        "this": True,
        "kind": True,
        "options": False,
        "exists": False,
        "description": False,
    }


class AlterConnector(exp.Expression):
    """``ALTER CONNECTOR c SET OPTIONS (k 'v', ...)`` (merged into the
    options; ``k ''`` removes one) and/or ``SET DESCRIPTION '...'``."""

    arg_types = {"this": True, "options": False, "description": False}


class ShowConnectors(exp.Expression):
    arg_types = {"like": False}


class DescribeConnector(exp.Expression):
    arg_types = {"this": True}


class DropConnector(exp.Expression):
    arg_types = {"this": True, "exists": False}


class CreateOnDemandFeatureGroup(exp.Expression):
    arg_types = {
        "this": True,
        "version": False,
        "exists": False,
        "connector": True,
        "primary_key": True,
        "event_time": False,
        "description": False,
        "metadata": False,
        "query": True,
    }


def _option(p: Parser) -> exp.Expression:
    key = p._parse_id_var(any_token=True)
    if not isinstance(key, exp.Identifier):
        p.raise_error("Expected an option name")
    assert isinstance(key, exp.Identifier)
    p._match(TokenType.EQ)
    value = p._parse_string() or p._parse_number()
    if not isinstance(value, exp.Literal):
        p.raise_error(f"Expected a quoted value for option {key}")
    return exp.Property(this=exp.Literal.string(key.name.lower()), value=value)


@statement("CREATE", "CONNECTOR")
def _create_connector(p: Parser) -> exp.Expr:
    exists = bool(p._match_text_seq("IF", "NOT", "EXISTS"))
    name = _name(p, "a connector name")
    if not p._match_text_seq("TYPE"):
        p.raise_error("Expected TYPE after the connector name")
    kind = p._parse_id_var(any_token=True)
    if not isinstance(kind, exp.Identifier):
        p.raise_error("Expected a connector type (postgres, mysql, clickhouse, trino, files)")
    node = CreateConnector(this=name, kind=kind, exists=exists)
    while True:
        if p._match_text_seq("OPTIONS"):
            node.set("options", p._parse_wrapped_csv(lambda: _option(p)))
        elif p._match_text_seq("DESCRIPTION"):
            node.set("description", _string(p, "DESCRIPTION"))
        else:
            break
    return node


@statement("ALTER", "CONNECTOR")
def _alter_connector(p: Parser) -> exp.Expr:
    node = AlterConnector(this=_name(p, "a connector name"))
    while p._match_text_seq("SET"):
        if p._match_text_seq("OPTIONS"):
            node.set("options", p._parse_wrapped_csv(lambda: _option(p)))
        elif p._match_text_seq("DESCRIPTION"):
            node.set("description", _string(p, "DESCRIPTION"))
        else:
            p.raise_error("Expected SET OPTIONS (...) or SET DESCRIPTION '...'")
        p._match(TokenType.COMMA)
    if not node.args.get("options") and node.args.get("description") is None:
        p.raise_error("Expected SET OPTIONS (...) or SET DESCRIPTION '...'")
    return node


@statement("SHOW", "CONNECTORS")
def _show_connectors(p: Parser) -> exp.Expr:
    like = None
    if p._match(TokenType.LIKE) or p._match(TokenType.ILIKE):
        like = _string(p, "LIKE")
    return ShowConnectors(like=like)


@statement("DESCRIBE", "CONNECTOR")
def _describe_connector(p: Parser) -> exp.Expr:
    return DescribeConnector(this=_name(p, "a connector name"))


@statement("DROP", "CONNECTOR")
def _drop_connector(p: Parser) -> exp.Expr:
    exists = bool(p._match_text_seq("IF", "EXISTS"))
    return DropConnector(this=_name(p, "a connector name"), exists=exists)


@statement("CREATE", "ON", "DEMAND", "FEATURE", "GROUP")
def _create_on_demand(p: Parser) -> exp.Expr:
    exists = bool(p._match_text_seq("IF", "NOT", "EXISTS"))
    node = CreateOnDemandFeatureGroup(this=_name(p, "a feature group name"), exists=exists)
    while True:
        if p._match_text_seq("VERSION"):
            num = p._parse_number()
            if num is None:
                p.raise_error("Expected a version number after VERSION")
            node.set("version", num)
        elif p._match_text_seq("CONNECTOR"):
            node.set("connector", _name(p, "a connector name"))
        elif p._match(TokenType.PRIMARY_KEY) or p._match_text_seq("PRIMARY", "KEY"):
            node.set("primary_key", p._parse_wrapped_id_vars())
        elif p._match_text_seq("EVENT", "TIME"):
            node.set("event_time", _name(p, "the event time column"))
        elif p._match_text_seq("DESCRIPTION"):
            node.set("description", _string(p, "DESCRIPTION"))
        elif p._match_text_seq("METADATA"):
            node.set("metadata", _metadata(p))
        else:
            break
    if not node.args.get("connector"):
        p.raise_error("CREATE ON DEMAND FEATURE GROUP needs CONNECTOR name")
    if not node.args.get("primary_key"):
        p.raise_error("CREATE ON DEMAND FEATURE GROUP needs PRIMARY KEY (column, ...)")
    if not p._match(TokenType.ALIAS):
        p.raise_error("CREATE ON DEMAND FEATURE GROUP needs AS SELECT ...")
    query = p._parse_select()
    if not isinstance(query, exp.Query):
        p.raise_error("Expected a query after AS")
    node.set("query", query)
    return node
