"""Every error of ``store.sql`` is an FsqlError with a SQLSTATE: deep
nesting is 54001, text that is not UTF-8 is 22021, a number beyond a
double is 22003, and anything else that escapes (a bug) is XX000 chained
to the original, never hiding the SQLSTATE of a real error."""

from __future__ import annotations

import pyarrow as pa
import pytest

import fsql
from fsql.errors import FsqlError, UndefinedObject
from fsql.plan.features import key_lookup
from fsql.statements.run import StatementTooComplex, nesting
from fsql.store.assign import NumericValueOutOfRange
from fsql.tables import CharacterNotInRepertoire


def nested(n: int, open_: str = "(", inner: str = "1") -> str:
    return "SELECT " + open_ * n + inner + ")" * n


@pytest.mark.parametrize(
    "text",
    [
        nested(47),
        nested(300),
        nested(5000),
        nested(60, "abs("),
        nested(60, "(SELECT "),
    ],
    ids=["parens-47", "parens-300", "parens-5000", "functions-60", "subqueries-60"],
)
def test_deep_nesting_is_54001(store, text):
    with pytest.raises(StatementTooComplex) as info:
        store.sql(text)
    e = info.value
    assert e.sqlstate == "54001"
    assert e.message == "statement too deeply nested"
    depth, position = nesting(text)
    assert e.detail == f"{depth} levels of parentheses"
    assert e.position == position and text[position - 1] == "("
    # the store works on
    assert store.sql("SELECT 1 + 1 AS two").column("two").to_pylist() == [2]


def test_moderate_nesting_still_works(store):
    assert store.sql(nested(30)).column(0).to_pylist() == [1]
    assert store.sql(nested(25, "abs(", "-3")).column(0).to_pylist() == [3]
    assert store.sql(nested(20, "(SELECT ", "7")).column(0).to_pylist() == [7]
    # parentheses inside quotes and comments do not count
    text = "SELECT '((((' AS a -- ((((\n, ((1)) AS b"
    assert nesting(text) == (2, text.index("((1") + 2)  # the second "("
    assert store.sql(text).to_pylist() == [{"a": "((((", "b": 1}]


def test_text_that_is_not_utf8_is_22021(store):
    for text in (
        "SELECT unhex('FF')",
        "SELECT unhex('41FF') AS x, 1 AS y",
        "SELECT [unhex('FF')] AS x",  # inside an array
        "SELECT toLowCardinality(unhex('FF')) AS x",  # dictionary-encoded
    ):
        with pytest.raises(CharacterNotInRepertoire) as info:
            store.sql(text)
        assert info.value.sqlstate == "22021"
        assert 'invalid byte sequence for encoding "UTF8"' in info.value.message
    assert store.sql("SELECT unhex('41') AS a, 'ünï' AS b").to_pylist() == [{"a": "A", "b": "ünï"}]


def test_non_utf8_next_to_a_bytea_feature_is_binary(store):
    """Where a bytea feature is read, a computed column that is not UTF-8
    stays a value (binary), as before."""
    store.create_feature_group(
        "blobs", pa.table({"k": [1], "b": pa.array([b"\x00\xff"], pa.binary())}), primary_key="k"
    )
    got = store.sql("SELECT b, unhex('FF') AS x FROM blobs")
    assert got.to_pylist() == [{"b": b"\x00\xff", "x": b"\xff"}]
    assert got.schema.field("x").type == pa.binary()


@pytest.mark.parametrize(
    "text,literal",
    [
        ("SELECT 1e400", "1e400"),
        ("SELECT -1e400 AS x", "1e400"),
        ("SELECT 1e400 > 0", "1e400"),
        ("SELECT 0.0000001e400", "0.0000001e400"),
        ("SELECT 1" + "0" * 400, "1" + "0" * 400),
    ],
    ids=["exponent", "negative", "compared", "fraction", "digits"],
)
def test_a_number_beyond_a_double_is_22003(store, text, literal):
    with pytest.raises(NumericValueOutOfRange) as info:
        store.sql(text)
    assert info.value.sqlstate == "22003"
    assert info.value.message.startswith("numeric value out of range: ")
    assert info.value.position == text.index(literal) + 1


def test_numbers_a_double_holds_still_work(store):
    got = store.sql("SELECT 1e308 AS a, 1e-400 AS b, 0e400 AS c, 1" + "0" * 300 + " AS d")
    assert got.to_pylist() == [{"a": 1e308, "b": 0.0, "c": 0.0, "d": 1e300}]


def test_insert_of_a_number_beyond_a_double_writes_nothing(store):
    store.sql("CREATE FEATURE GROUP g (k bigint, v double precision) PRIMARY KEY (k)")
    with pytest.raises(NumericValueOutOfRange):
        store.sql("INSERT INTO g VALUES (1, 2.5), (2, 1e400)")
    assert store.sql("SELECT count(*) AS n FROM g").column("n").to_pylist() == [0]


@pytest.fixture
def grouped(store: fsql.Store) -> fsql.Store:
    store.create_feature_group(
        "profile", pa.table({"cid": [1, 2], "age": [30, 40]}), primary_key="cid"
    )
    return store


def subscribed(fn):
    key_lookup.subscribe(fn)
    return fn


def test_a_python_error_that_escapes_is_xx000_chained_to_it(grouped):
    def broken(store, plan):
        raise ValueError("a bug in a subscriber")

    subscribed(broken)
    try:
        with pytest.raises(FsqlError) as info:
            grouped.sql("SELECT FEATURES age WHERE cid = 1")
    finally:
        key_lookup._subscribers.remove(broken)
    e = info.value
    assert type(e) is FsqlError and e.sqlstate == "XX000"
    assert e.message == "internal error: ValueError: a bug in a subscriber"
    assert isinstance(e.__cause__, ValueError)
    assert grouped.sql("SELECT FEATURES age WHERE cid = 1").column("age").to_pylist() == [30]


def test_recursion_while_running_is_54001(grouped):
    def deep(store, plan):
        raise RecursionError("maximum recursion depth exceeded")

    subscribed(deep)
    try:
        with pytest.raises(StatementTooComplex) as info:
            grouped.sql("SELECT FEATURES age WHERE cid = 2")
    finally:
        key_lookup._subscribers.remove(deep)
    assert info.value.sqlstate == "54001"


def test_real_errors_keep_their_sqlstate(store):
    with pytest.raises(UndefinedObject) as info:
        store.sql("SELECT * FROM no_such_group")
    assert info.value.sqlstate == "42P01"
    with pytest.raises(FsqlError) as syntax:
        store.sql("SELEC 1")
    assert syntax.value.sqlstate == "42601"
