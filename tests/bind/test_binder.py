"""The binder: every table reference goes to the relation kinds in order;
a new kind is one registration."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa
import pytest
from sqlglot import exp

import fsql.plugins  # noqa: F401  (the layers above register their kinds)
from fsql.bind import kinds
from fsql.bind.binder import bind
from fsql.bind.sources import GROUP_SOURCES, group_source
from fsql.errors import FsqlError
from fsql.sql.dialect import parse


@pytest.fixture
def tx(store):
    store.create_feature_group(
        "tx",
        pa.table({"k": [1, 2], "ts": [dt.datetime(2024, 1, 1)] * 2, "amount": [1.5, 2.5]}),
        primary_key="k",
        event_time="ts",
    )
    return store


def test_kinds_are_asked_in_order_and_the_layers_above_register_theirs() -> None:
    names = [k.name for k in kinds.kinds(qualified=False)]
    assert names.index("feature_group") < names.index("training_dataset")
    assert [k.name for k in kinds.kinds(qualified=True)] == ["connector_table"]


def test_a_registered_kind_binds_names_nobody_else_claims(tx) -> None:
    def constants(ctx, table):
        if table.name != "answers":
            return None
        q = exp.select(exp.alias_(exp.Literal.number(42), "x"))
        return q.subquery(exp.to_identifier(table.alias or table.name, quoted=True))

    kinds.relation_kind("test_constants", order=90)(constants)
    try:
        assert tx.sql("SELECT x FROM answers").column("x").to_pylist() == [42]
        # a feature group still wins over a later kind
        assert tx.sql("SELECT count(*) AS n FROM tx").column("n").to_pylist() == [2]
    finally:
        kinds.KINDS[:] = [k for k in kinds.KINDS if k.name != "test_constants"]
    with pytest.raises(FsqlError) as e:
        tx.sql("SELECT x FROM answers")
    assert e.value.sqlstate == "42P01"


def test_an_unknown_name_is_42p01_with_a_hint_and_position(tx) -> None:
    (statement,) = parse("SELECT * FROM txx")
    with pytest.raises(FsqlError) as e:
        bind(tx, statement)
    assert e.value.sqlstate == "42P01"
    assert "tx" in (e.value.hint or "")
    assert e.value.position == 15


def test_binding_copies_and_keeps_ctes(tx) -> None:
    (statement,) = parse("WITH t AS (SELECT * FROM tx) SELECT amount FROM t ORDER BY amount")
    bound = bind(tx, statement)
    assert statement.sql() != bound.sql()  # the parsed tree is left as it was
    assert sorted(t.name for t in statement.find_all(exp.Table)) == ["t", "tx"]
    result = tx.engine.query(bound.sql("clickhouse"))
    assert result.column("amount").to_pylist() == [1.5, 2.5]


def test_group_sources_dispatch_on_the_group_kind(tx) -> None:
    fg = tx.feature_group("tx")
    seen: list[str] = []

    def probe(store, fg, **kwargs):
        seen.append(fg.name)
        return exp.select(exp.alias_(exp.Literal.number(7), "k"))

    GROUP_SOURCES["probe_kind"] = probe
    try:
        other = dataclasses.replace(fg, kind="probe_kind")
        rel = group_source(tx, other, columns=["k"])
        assert tx.engine.query(rel.sql("clickhouse")).column("k").to_pylist() == [7]
        assert seen == ["tx"]
    finally:
        del GROUP_SOURCES["probe_kind"]
    unknown = dataclasses.replace(fg, kind="nope")
    with pytest.raises(FsqlError) as e:
        group_source(tx, unknown)
    assert e.value.sqlstate == "0A000"
