"""The catalog service on SQLite (embedded default) and on the local
PostgreSQL (server mode), each in a fresh schema that is dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from service_checks import require_service
from sqlalchemy import inspect, select

import fsql
from fsql.catalog import Catalog, Feature
from fsql.catalog import models as m
from fsql.catalog.migrations import MIGRATIONS, migrate
from fsql.errors import DuplicateObject, InvalidParameter, UndefinedObject

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in the local PostgreSQL's ``test`` database."""
    require_service("postgres")
    import psycopg

    schema = f"fsql_test_{uuid.uuid4().hex[:12]}"
    dsn = "postgresql://postgres@127.0.0.1:5432/test"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def catalog(request, tmp_path: Path) -> Iterator[Catalog]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
    cat = Catalog(url)
    try:
        yield cat
    finally:
        cat.close()


FEATURES = [
    Feature("customer_id", "bigint", "customer"),
    Feature("event_ts", "timestamp"),
    Feature("amount_sum_7d", "double precision", "7-day spend"),
]


def create(cat: Catalog, name: str = "transactions", **kw):
    args = dict(
        project="default",
        name=name,
        features=FEATURES,
        primary_key=["customer_id"],
        event_time="event_ts",
        description="rolling transaction aggregates",
    )
    args.update(kw)
    return cat.create_feature_group(**args)


def test_migrations_are_recorded_and_idempotent(catalog):
    with catalog.engine.connect() as conn:
        versions = sorted(conn.execute(select(m.schema_migrations.c.version)).scalars())
    assert versions == sorted(v for v, _, _ in MIGRATIONS)
    assert migrate(catalog.engine) == []  # nothing left to apply
    tables = set(inspect(catalog.engine).get_table_names())
    core = {m.projects, m.feature_groups, m.features, m.fg_metadata, m.commits}
    assert {t.name for t in core} <= tables


def test_projects(catalog):
    assert catalog.projects() == ["default"]
    pid = catalog.ensure_project("risk")
    assert catalog.ensure_project("risk") == pid
    assert catalog.projects() == ["default", "risk"]
    with pytest.raises(UndefinedObject) as e:
        catalog.feature_groups("rsk")
    assert e.value.sqlstate == "3D000" and "'risk'" in (e.value.hint or "")


def test_create_read_versions_and_drop(catalog):
    v1 = create(catalog, metadata={"owner": "risk"})
    assert (v1.name, v1.version, v1.kind) == ("transactions", 1, "cached")
    assert v1.features == tuple(FEATURES)
    assert v1.primary_key == ("customer_id",) and v1.event_time == "event_ts"
    assert v1.metadata == {"owner": "risk"}
    v2 = create(catalog, features=FEATURES[:2])
    assert v2.version == 2
    assert catalog.feature_group("default", "transactions").version == 2
    assert catalog.feature_group("default", "transactions", "latest").version == 2
    assert catalog.feature_group("default", "transactions", 1).feature_names == [
        f.name for f in FEATURES
    ]
    assert [(g.name, g.version) for g in catalog.feature_groups()] == [
        ("transactions", 1),
        ("transactions", 2),
    ]
    assert [g.name for g in catalog.find_features("amount_sum_7d")] == []  # latest lacks it
    catalog.drop_feature_group(v2)
    assert [g.name for g in catalog.find_features("amount_sum_7d")] == ["transactions"]
    catalog.drop_feature_group(v1)
    assert catalog.feature_groups() == []


def test_duplicate_and_unknown_names(catalog):
    create(catalog)
    with pytest.raises(DuplicateObject) as e:
        create(catalog, version=1)
    assert e.value.sqlstate == "42P07"
    with pytest.raises(InvalidParameter):
        create(catalog, version=0)
    with pytest.raises(UndefinedObject) as e:
        catalog.feature_group("default", "transaktions")
    assert "'transactions'" in (e.value.hint or "")


def test_metadata(catalog):
    fg = create(catalog)
    catalog.set_metadata(fg, {"owner": "risk", "tier": "1"})
    catalog.set_metadata(fg, {"tier": "2"})
    assert catalog.get_metadata(fg) == {"owner": "risk", "tier": "2"}
    assert catalog.get_metadata(fg, ["tier"]) == {"tier": "2"}
    assert catalog.remove_metadata(fg, ["owner", "ghost"]) == ["ghost"]
    assert catalog.get_metadata(fg) == {"tier": "2"}


def test_search(catalog):
    create(catalog)
    create(
        catalog,
        "profiles",
        features=[Feature("customer_id", "bigint"), Feature("age", "integer", "age in years")],
        event_time=None,
        description="crm",
        metadata={"team": "growth"},
    )
    hits = catalog.search("spend")
    assert [(h["kind"], h["feature"]) for h in hits] == [("feature", "amount_sum_7d")]
    assert {h["feature_group"] for h in catalog.search("GROWTH")} == {"profiles"}
    assert [h["feature"] for h in catalog.search("age years")] == ["age"]
    with pytest.raises(InvalidParameter):
        catalog.search("   ")


def test_commits(catalog):
    fg = create(catalog)
    c1 = catalog.begin_commit(fg)
    c2 = catalog.begin_commit(fg)
    assert c1.state == "pending" and c2.commit_time_us > c1.commit_time_us
    done = catalog.finish_commit(c1, 10, upserts=False)
    assert (done.state, done.row_count) == ("committed", 10)
    catalog.abort_commit(c2)
    assert [c.state for c in catalog.commits(fg)] == ["committed", "aborted"]
    assert [c.id for c in catalog.commits(fg, state="committed")] == [c1.id]
    assert catalog.commits(state="pending") == []
    assert not catalog.feature_group("default", "transactions").has_upserts
    c3 = catalog.begin_commit(fg)
    catalog.finish_commit(c3, 1, upserts=True)
    assert catalog.feature_group("default", "transactions").has_upserts
    assert catalog.feature_group_by_id(fg.id).name == "transactions"
    assert catalog.feature_group_by_id(10_000) is None


def test_store_with_postgres_catalog(pg_url, tmp_path):
    """Server-mode catalog, same code path: the choice is remembered in the folder."""
    folder = tmp_path / "store"
    data = pa.table({"customer_id": [1, 2], "amount": [1.0, 2.0]})
    with fsql.connect(folder, catalog=pg_url) as store:
        fg = store.create_feature_group("tx", data, primary_key="customer_id")
        fg.add_metadata({"owner": "risk"})
        assert fg.read().to_pylist() == data.to_pylist()
    assert "postgresql+psycopg" in (folder / "fsql.json").read_text()
    assert not (folder / "catalog.sqlite").exists()
    with fsql.connect(folder) as store:  # no URL: taken from fsql.json
        fg = store.get_feature_group("tx")
        assert fg.get_metadata() == {"owner": "risk"}
        assert fg.read().num_rows == 2
        hits = store.search("owner risk")  # metadata matches the group and its features
        assert hits.column("kind").to_pylist() == ["feature_group", "feature", "feature"]
