"""Confinement over the wire: the hostile corpus through the simple and the
extended protocol (and COPY / DECLARE), each session confined to its
connection's project, files only under --allow-read."""

from __future__ import annotations

import datetime as dt
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fsql
from fsql.server import auth

from .conftest import PASSWORD, USER, Server, start_server
from .rawclient import Raw, error_fields, startup_packet

sys.path.insert(0, str(Path(__file__).parent.parent))
from hostile_corpus import REFUSED, Canaries, corpus


def _rows(v: float) -> pa.Table:
    return pa.table({"k": [1, 2], "ts": [dt.datetime(2024, 1, 1)] * 2, "amount": [v, v + 1]})


@pytest.fixture(scope="module")
def confined(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Canaries, Path]]:
    root = tmp_path_factory.mktemp("confined")
    canaries = Canaries.start(root)  # the canary variable is in the server's environment
    path = root / "store"
    store = fsql.connect(path)
    try:
        store.create_feature_group("tx", _rows(1.5), primary_key="k", event_time="ts")
        store.catalog.ensure_project("p2")
        store.for_project("p2").create_feature_group(
            "secret", _rows(100.0), primary_key="k", event_time="ts"
        )
        auth.set_password(store.catalog, USER, PASSWORD)
    finally:
        store.close()
    allowed = root / "allowed"
    allowed.mkdir()
    pq.write_table(pa.table({"k": [2], "ts": [dt.datetime(2024, 6, 1)]}), allowed / "s.parquet")
    pq.write_table(pa.table({"k": [2], "ts": [dt.datetime(2024, 6, 1)]}), root / "s.parquet")
    server = start_server(path, "--allow-read", str(allowed))
    try:
        yield server, canaries, root
    finally:
        server.stop()
        canaries.stop()


def _dsn(server: Server, db: str = "default") -> str:
    return f"host=127.0.0.1 port={server.port} dbname={db} user={USER} password={PASSWORD}"


def test_hostile_corpus_over_both_protocols(confined):
    server, canaries, _ = confined
    statements = corpus(canaries, server.path)
    states: Counter[str] = Counter()
    accepted: list[str] = []
    with psycopg.connect(_dsn(server), autocommit=True) as conn:
        for text in statements:
            for prepare in (False, True):  # unnamed and named extended-protocol statements
                try:
                    rows = conn.execute(text, prepare=prepare).fetchall()
                except psycopg.Error as e:
                    diag = e.diag
                    shown = " ".join(
                        x or ""
                        for x in (diag.message_primary, diag.message_detail, diag.message_hint)
                    )
                    assert not canaries.leaked(shown), text
                    assert diag.sqlstate in REFUSED, (text, diag.sqlstate, shown)
                    states[diag.sqlstate or ""] += 1
                    continue
                accepted.append(text)
                assert not canaries.leaked(repr(rows)), text
    raw = Raw(server.port)
    try:
        raw.login(USER, PASSWORD)
        for text in statements:  # the simple query protocol
            messages = raw.query(text)
            errors = [error_fields(b) for k, b in messages if k == b"E"]
            shown = repr(messages)
            assert not canaries.leaked(shown), text
            if not errors:
                accepted.append(text)
                continue
            assert errors[0]["C"] in REFUSED, (text, errors[0])
            states[errors[0]["C"]] += 1
    finally:
        raw.close()
    # PostgreSQL's information_schema is the catalog mirror's (a real
    # PostgreSQL holding fsql's catalog), as psql and BI tools expect: the
    # engine's INFORMATION_SCHEMA is never reached
    assert accepted and all("information_schema" in t.lower() for t in accepted)
    assert sum(states.values()) + len(accepted) == 3 * len(statements)
    assert states["42501"] > len(statements)  # refused for what they are, not by the parser
    assert canaries.connections == []
    with psycopg.connect(_dsn(server), autocommit=True) as conn:
        assert conn.execute("SELECT k, amount FROM tx ORDER BY k").fetchall() == [
            (1, 1.5),
            (2, 2.5),
        ]


def test_copy_and_cursors_are_confined(confined):
    server, canaries, _ = confined
    rels = [f"\"file\"('{canaries.file}', 'LineAsString')", "system.tables", "fsql_p2.secret_v1"]
    with psycopg.connect(_dsn(server), autocommit=True) as conn:
        for rel in rels:
            with (
                pytest.raises(psycopg.Error) as e,
                conn.cursor().copy(f"COPY (SELECT * FROM {rel}) TO STDOUT") as copy,
            ):
                b"".join(bytes(b) for b in copy)
            assert e.value.diag.sqlstate == "42501"
        with conn.transaction():
            for rel in rels:
                with pytest.raises(psycopg.Error) as e, conn.transaction():
                    conn.execute(f"DECLARE c CURSOR FOR SELECT * FROM {rel}")
                    conn.execute("FETCH ALL FROM c").fetchall()
                assert e.value.diag.sqlstate == "42501"


def test_each_session_reads_its_own_project(confined):
    server, _, _ = confined
    with psycopg.connect(_dsn(server, "p2"), autocommit=True) as conn:
        assert conn.execute("SELECT amount FROM secret ORDER BY k").fetchall() == [
            (100.0,),
            (101.0,),
        ]
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT count(*) FROM tx")
        assert e.value.diag.sqlstate == "42P01"
        got = conn.execute("SELECT FEATURES amount WHERE k = %s", [2]).fetchall()
        assert got == [(2, 101.0)]
    with psycopg.connect(_dsn(server), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT count(*) FROM secret")
        assert e.value.diag.sqlstate == "42P01"
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT * FROM fsql_p2.secret_v1")
        assert e.value.diag.sqlstate == "42501"
        assert conn.execute("SELECT FEATURES amount WHERE k = %s", [2]).fetchall() == [(2, 2.5)]


def test_a_database_that_is_no_project_is_refused_at_startup(confined):
    server, _, _ = confined
    raw = Raw(server.port)
    try:
        raw.send(startup_packet(USER, "no_such_project"))
        kind, body = raw.read()
        while kind not in (b"E",):
            if kind == b"R" and body[:4] == b"\0\0\0\x0a":  # SASL: log in first
                raw.close()
                with pytest.raises(psycopg.OperationalError) as e:
                    psycopg.connect(_dsn(server, "no_such_project"))
                assert "does not exist" in str(e.value)
                return
            kind, body = raw.read()
        assert error_fields(body)["C"] == "3D000"
    finally:
        raw.close()


def test_files_only_under_allow_read(confined):
    server, _, root = confined
    q = "SELECT FEATURES amount FROM read_parquet('{}') AS s AS OF s.ts"
    with psycopg.connect(_dsn(server), autocommit=True) as conn:
        rows = conn.execute(q.format(root / "allowed" / "s.parquet")).fetchall()
        assert [r[-1] for r in rows] == [2.5]
        for path in (root / "s.parquet", root / "allowed" / ".." / "s.parquet", "/etc/passwd"):
            with pytest.raises(psycopg.Error) as e:
                conn.execute(q.format(path))
            assert e.value.diag.sqlstate == "42501"
        # secrets only from the server's allowed variables and folders (none here)
        with pytest.raises(psycopg.Error) as e:
            conn.execute(
                "CREATE CONNECTOR leak TYPE postgres OPTIONS (host '127.0.0.1', port '5432', "
                "database 'test', user 'postgres', password_env 'FSQL_SERVER_PASSWORD')"
            )
        assert e.value.diag.sqlstate == "42501"
        with pytest.raises(psycopg.Error) as e:
            conn.execute(
                "CREATE CONNECTOR leak TYPE postgres OPTIONS (host '127.0.0.1', port '5432', "
                "database 'test', user 'postgres', password_file '/etc/hostname')"
            )
        assert e.value.diag.sqlstate == "42501"
        with pytest.raises(psycopg.Error) as e:
            conn.execute(
                f"CREATE CONNECTOR lake TYPE files OPTIONS (path '{root}', format 'parquet')"
            )
        assert e.value.diag.sqlstate == "42501"
        with pytest.raises(psycopg.Error) as e:
            conn.execute(
                "CREATE TRAINING DATASET td AS SELECT FEATURES amount FROM tx AS OF tx.ts "
                "WITH (location = '/tmp/elsewhere')"
            )
        assert e.value.diag.sqlstate == "42501"
