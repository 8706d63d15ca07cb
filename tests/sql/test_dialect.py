"""The FSQL parser: every statement of DESIGN.md parses into its node, plain
PostgreSQL stays plain, and syntax errors carry SQLSTATE 42601 and a position."""

from __future__ import annotations

import pytest
from sqlglot import exp

from fsql.errors import SQLSyntaxError
from fsql.sql import nodes
from fsql.sql.dialect import parse

STATEMENTS = [
    (
        "CREATE FEATURE GROUP transactions (customer_id BIGINT, event_ts TIMESTAMP, "
        "amount_sum_7d DOUBLE PRECISION) PRIMARY KEY (customer_id) EVENT TIME event_ts ONLINE "
        "DESCRIPTION 'rolling transaction aggregates'",
        nodes.CreateFeatureGroup,
    ),
    (
        "CREATE FEATURE GROUP g PRIMARY KEY (k) EVENT TIME ts AS SELECT 1 AS k, now() AS ts",
        nodes.CreateFeatureGroup,
    ),
    ("INSERT INTO transactions VALUES (1, '2024-01-01', 2.5)", exp.Insert),
    ("INSERT INTO transactions SELECT * FROM other", exp.Insert),
    ("SELECT FEATURES amount_sum_7d, age", nodes.SelectFeatures),
    (
        "SELECT FEATURES transactions.*, profile.age AS OF TIMESTAMP '2024-06-01 00:00:00'",
        nodes.SelectFeatures,
    ),
    ("SELECT FEATURES amount_sum_7d, age FROM labels AS OF labels.event_ts", nodes.SelectFeatures),
    (
        "SELECT FEATURES amount_sum_7d FOR SYSTEM_TIME AS OF TIMESTAMP '2024-07-01'",
        nodes.SelectFeatures,
    ),
    ("SELECT * FROM transactions FOR SYSTEM_TIME BETWEEN '2024-01-01' AND now()", exp.Select),
    ("SELECT FEATURES amount_sum_7d, age WHERE customer_id = 42", nodes.SelectFeatures),
    ("SELECT FEATURES transactions_v2.amount AS a FROM l AS OF l.ts", nodes.SelectFeatures),
    ("SHOW FEATURE GROUPS", nodes.ShowFeatureGroups),
    ("SHOW FEATURES FROM transactions LIKE 'amount%'", nodes.ShowFeatures),
    ("SHOW FEATURES", nodes.ShowFeatures),
    ("DESCRIBE FEATURE GROUP transactions VERSION 2", nodes.DescribeFeatureGroup),
    ("SEARCH FEATURES 'credit'", nodes.SearchFeatures),
    ("ALTER FEATURE GROUP transactions SET METADATA ('owner' = 'risk')", nodes.AlterFeatureGroup),
    ("ALTER FEATURE GROUP transactions UNSET METADATA ('owner')", nodes.AlterFeatureGroup),
    ("DROP FEATURE GROUP IF EXISTS transactions VERSION 1", nodes.DropFeatureGroup),
    ("EXPLAIN SELECT FEATURES amount_sum_7d", nodes.ExplainStatement),
]


@pytest.mark.parametrize(("text", "node_type"), STATEMENTS)
def test_statement_parses_to_its_node(text, node_type):
    (statement,) = parse(text)
    assert type(statement) is node_type


def test_select_features_parts():
    (s,) = parse(
        "SELECT FEATURES a, fg.b AS bee, fg2.* FROM labels l AS OF l.ts "
        "FOR SYSTEM_TIME AS OF TIMESTAMP '2024-07-01' WHERE l.k > 3 ORDER BY k LIMIT 5 OFFSET 1"
    )
    items = s.expressions
    assert [i.sql() for i in items] == ["a", "fg.b AS bee", "fg2.*"]
    assert s.args["spine"].alias == "l"
    assert s.args["as_of"].sql() == "l.ts"
    assert s.args["system_time"] is not None
    assert s.args["limit"].expression.this == "5"
    assert s.args["offset"] is not None


def test_plain_sql_with_a_column_named_features_stays_plain():
    (s,) = parse("SELECT features FROM t")
    assert isinstance(s, exp.Select)
    (s,) = parse("SELECT features, x FROM t")
    assert isinstance(s, exp.Select)


def test_plain_postgres_sql_parses():
    text = (
        "WITH w AS (SELECT k, sum(x) OVER (PARTITION BY k ORDER BY ts) AS s FROM a) "
        "SELECT w.k, count(*) FROM w JOIN b ON w.k = b.k GROUP BY w.k HAVING count(*) > 1"
    )
    (s,) = parse(text)
    assert isinstance(s, exp.Select)


def test_several_statements():
    assert [type(s).__name__ for s in parse("SELECT 1; SHOW FEATURE GROUPS; SELECT 2")] == [
        "Select",
        "ShowFeatureGroups",
        "Select",
    ]


def test_show_setting_is_a_command():
    (s,) = parse("SHOW transaction isolation level")
    assert isinstance(s, exp.Command)
    assert s.expression.this == "transaction isolation level"


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("SELECT FEATURES a,", None),
        ("SELECT FEATURES a FROM", None),
        ("CREATE FEATURE GROUP g (k BIGINT)", "PRIMARY KEY"),
        ("SELECT 1 FROM t WHERE", "end of input"),
        ("ALTER FEATURE GROUP g SET COLOR 'red'", None),
        ("SELECT FEATURES a AS OF", "AS OF needs a time"),
        ("SELECT FEATURES a FOR SYSTEM_TIME AS OF WHERE k = 1", "SYSTEM_TIME AS OF needs a time"),
    ],
)
def test_syntax_errors_have_sqlstate_and_position(text, token):
    with pytest.raises(SQLSyntaxError) as info:
        parse(text)
    err = info.value
    assert err.sqlstate == "42601"
    assert err.position is not None and 1 <= err.position <= len(text) + 1
    if token:
        assert token.lower() in err.message.lower()


def test_syntax_error_position_points_at_the_token():
    text = "SELECT FEATURES a,\n  , b FROM labels AS OF labels.ts"
    with pytest.raises(SQLSyntaxError) as info:
        parse(text)
    assert text[info.value.position - 1] == ","
    assert info.value.position == text.index(", b") + 1


# (text, message, position) as PostgreSQL 16 reports them (checked against a
# real server); positions are 1-based characters, end of input is len + 1.
PG_ERRORS = [
    ("SELEC * FROM transactions", 'syntax error at or near "SELEC"', 1),
    ("FOO", 'syntax error at or near "FOO"', 1),
    ("  WHERE x", 'syntax error at or near "WHERE"', 3),
    ("SELECT 1;\n  SELEC 2", 'syntax error at or near "SELEC"', 13),
    ("SELECT * FROM transactions WHERE", "syntax error at end of input", 33),
    ("SELECT * FROM t WHERE -- c\n", "syntax error at end of input", 28),
    ("SELECT 1 +", "syntax error at end of input", 11),
    ("SELECT * FROM t WHERE; SELECT 1", 'syntax error at or near ";"', 22),
    ("SELECT 1 2 3", 'syntax error at or near "2"', 10),
    ("SELECT * FROM t WHERE a = = 1", 'syntax error at or near "="', 27),
    (
        "SELECT FEATURES amount AS OF TIMESTAMP '2024",
        'unterminated quoted string at or near "\'2024"',
        40,
    ),
    ("SELECT 'a' 'b", 'unterminated quoted string at or near "\'b"', 12),
    ("SELECT E'abc", 'unterminated quoted string at or near "E\'abc"', 8),
    ('SELECT "abc', 'unterminated quoted identifier at or near ""abc"', 8),
    ("SELECT $$abc", 'unterminated dollar-quoted string at or near "$$abc"', 8),
    ("SELECT $x$ abc $$", 'unterminated dollar-quoted string at or near "$x$ abc $$"', 8),
    ("SELECT /* abc", 'unterminated /* comment at or near "/* abc"', 8),
]


@pytest.mark.parametrize(("text", "message", "position"), PG_ERRORS)
def test_syntax_errors_read_as_postgres(text, message, position):
    with pytest.raises(SQLSyntaxError) as info:
        parse(text)
    err = info.value
    assert (err.sqlstate, err.message, err.position) == ("42601", message, position)


@pytest.mark.parametrize(
    "text",
    [
        "SELEC * FROM transactions",
        "SELECT * FROM transactions WHERE",
        "SELECT 1 +",
        "SELECT FEATURES a FROM",
        "UPDATE",
        "SELECT * FROM t WHERE a = = 1",
        "SELECT 1 2 3",
    ],
)
def test_syntax_errors_never_show_sqlglot_internals(text):
    with pytest.raises(SQLSyntaxError) as info:
        parse(text)
    shown = str(info.value)
    for internal in ("<class", "sqlglot", "<Token", "TokenType", "Required keyword"):
        assert internal not in shown


def test_our_explanations_follow_the_postgres_words():
    with pytest.raises(SQLSyntaxError) as info:
        parse("CREATE FEATURE GROUP g (k BIGINT)")
    assert info.value.message == (
        "syntax error at end of input: CREATE FEATURE GROUP needs PRIMARY KEY (column, ...)"
    )
    assert info.value.position == len("CREATE FEATURE GROUP g (k BIGINT)") + 1
    with pytest.raises(SQLSyntaxError) as info:
        parse("SELECT FEATURES a FROM")
    assert info.value.message == "syntax error at end of input: Expected table name"


def test_statements_that_start_with_a_statement_word_still_parse():
    # the first-word check lets through every PostgreSQL and FSQL statement
    texts = [
        "(SELECT 1)",
        "VALUES (1)",
        "WITH a AS (SELECT 1) SELECT * FROM a",
        "EXPLAIN SELECT FEATURES a",
        "SEARCH FEATURES 'x'",
        "DESCRIBE FEATURE GROUP g",
        "BEGIN; COMMIT",
        "SHOW search_path",
        "-- only a comment",
        ";",
    ]
    for text in texts:
        assert isinstance(parse(text), list), text
    assert [type(s).__name__ for s in parse("/* c */ SELECT 1; ; SELECT 2")] == ["Select", "Select"]


def test_an_expression_is_not_a_statement_but_sqlglot_may_still_parse_one():
    # fsql.plan.get_features parses WHERE text with sqlglot directly; only parse()
    # applies the statement rule
    import sqlglot

    from fsql.sql.dialect import FSQL

    assert isinstance(sqlglot.parse_one("k = 1", dialect=FSQL), exp.EQ)
    with pytest.raises(SQLSyntaxError):
        parse("k = 1")


def test_select_features_with_no_feature_is_marked_with_its_from():
    # SELECT FEATURES FROM t is plain SQL for a column "features"; the node
    # records where FROM is, so the executor can say "SELECT FEATURES names no
    # feature" there when t has no such column
    from fsql.sql.dialect import bare_features_from

    text = "SELECT 1; SELECT FEATURES FROM labels"
    statement = parse(text)[1]
    assert isinstance(statement, exp.Select)
    assert bare_features_from(statement) == text.index("FROM") + 1
    assert bare_features_from(parse("SELECT features, x FROM t")[0]) is None
    assert bare_features_from(parse('SELECT "features" FROM t')[0]) is None
