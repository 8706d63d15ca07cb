"""fsql/names.py on parsed statements: column names resolve as PostgreSQL
resolves them, and integer divisions are found from the groups' types.
(End to end through a store: tests/test_feature_statements.py.)"""

from __future__ import annotations

import pytest
from sqlglot import exp

from fsql.bind.names import INT_DIV, check_columns, mark_integer_division
from fsql.errors import FsqlError
from fsql.sql.dialect import parse

RELATIONS = {
    "tx": frozenset({"customer_id", "ts", "cnt", "amount"}),
    "profile": frozenset({"customer_id", "ts", "cnt", "age"}),
}
KEYS = {"customer_id": "bigint", "ts": "timestamp", "cnt": "integer"}
TYPES = {
    "tx": {**KEYS, "amount": "double precision"},
    "profile": {**KEYS, "age": "integer"},
}


def check(text: str) -> None:
    (statement,) = parse(text)
    check_columns(statement, RELATIONS)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT t.cnt, p.cnt FROM tx t JOIN profile p ON t.customer_id = p.customer_id",
        "SELECT customer_id, age FROM tx JOIN profile USING (customer_id)",
        "SELECT amount + 1 AS a FROM tx ORDER BY a",
        "WITH x AS (SELECT customer_id, cnt AS c FROM tx) SELECT c, age FROM x JOIN profile "
        "USING (customer_id)",
        "SELECT * FROM tx WHERE EXISTS (SELECT 1 FROM profile WHERE age > amount)",
        "SELECT anything FROM read_parquet('x.parquet')",  # columns not known: the engine decides
        "SELECT nosuch FROM (SELECT * FROM tx) q",  # a star subquery: not known either
    ],
)
def test_names_that_resolve(text):
    check(text)


@pytest.mark.parametrize(
    ("text", "sqlstate", "token"),
    [
        ("SELECT cnt FROM tx t JOIN profile p ON t.customer_id = p.customer_id", "42702", "cnt"),
        ("SELECT cnt FROM tx JOIN profile USING (customer_id)", "42702", "cnt"),
        ("SELECT amoun FROM tx", "42703", "amoun"),
        ("SELECT t.amoun FROM tx t", "42703", "t.amoun"),
        ("SELECT * FROM tx WHERE EXISTS (SELECT 1 FROM profile WHERE agee > 1)", "42703", "agee"),
        ("SELECT a FROM (SELECT amount AS a FROM tx) q UNION ALL SELECT agee FROM profile",
         "42703", "agee"),
    ],
)  # fmt: skip
def test_names_that_do_not(text, sqlstate, token):
    with pytest.raises(FsqlError) as e:
        check(text)
    assert e.value.sqlstate == sqlstate
    assert e.value.position == text.index(token) + 1


def marked(text: str) -> list[bool]:
    (statement,) = parse(text)
    mark_integer_division(statement, TYPES)
    return [bool(d.meta.get(INT_DIV)) for d in statement.find_all(exp.Div)]


def test_integer_divisions_are_marked_from_the_types():
    assert marked("SELECT 7 / 2, 7.0 / 2, cnt / 2, amount / 2, sum(cnt) / count(*) FROM tx") == [
        True,
        False,
        True,
        False,
        True,
    ]
    assert marked("SELECT t.cnt / p.age FROM tx t JOIN profile p USING (customer_id)") == [True]
    assert marked("SELECT CAST(cnt AS DOUBLE PRECISION) / 2 FROM tx") == [False]
    assert marked("SELECT x / 2 FROM read_parquet('f.parquet')") == [False]  # unknown type
