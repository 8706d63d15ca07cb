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
        ("SELECT 1 FROM t WHERE", "WHERE"),
        ("ALTER FEATURE GROUP g SET COLOR 'red'", None),
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
