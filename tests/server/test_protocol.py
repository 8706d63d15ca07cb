"""Protocol behaviour: TLS negotiation, cancel, concurrency, bad input."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .conftest import PASSWORD, USER, Server, start_server
from .rawclient import Raw, cstr, data_rows, error_fields, msg, startup_packet


def _select_one(server: Server) -> None:
    import psycopg

    with psycopg.connect(server.dsn, autocommit=True, connect_timeout=10) as c:
        assert c.execute(
            "SELECT count(*) FROM transactions WHERE customer_id = %s", (1,)
        ).fetchone() == (2,)


def test_ssl_request_refused_without_tls(pg_server: Server) -> None:
    r = Raw(pg_server.port)
    try:
        r.send(struct.pack("!ii", 8, 80877103))
        assert r.recv_exact(1) == b"N"
        msgs = r.login(USER, PASSWORD)
        kinds = [k for k, _ in msgs]
        assert b"K" in kinds and kinds[-1] == b"Z"
        status = {b.split(b"\0")[0]: b.split(b"\0")[1] for k, b in msgs if k == b"S"}
        assert status[b"server_encoding"] == b"UTF8"
        assert status[b"integer_datetimes"] == b"on"
        assert status[b"standard_conforming_strings"] == b"on"
    finally:
        r.close()


def test_tls_when_configured(tmp_path: Path) -> None:
    import psycopg

    from .conftest import make_store

    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    path = tmp_path / "store"
    make_store(path)
    server = start_server(path, "--tls-cert", str(cert), "--tls-key", str(key), "--allow-plaintext")
    try:
        with psycopg.connect(server.dsn + " sslmode=require") as c:
            assert c.pgconn.ssl_in_use
            assert c.execute("SELECT name FROM transactions WHERE customer_id = 2").fetchall() == [
                ("b",)
            ]
            assert c.execute(
                "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'big'"
            ).fetchone() == (1,)
        with psycopg.connect(server.dsn + " sslmode=disable") as c:
            assert not c.pgconn.ssl_in_use
    finally:
        server.stop()


def test_password_required_unless_trust(pg_server: Server) -> None:
    r = Raw(pg_server.port)
    try:
        r.send(startup_packet(USER))
        k, body = r.read()
        assert k == b"R" and struct.unpack("!i", body[:4])[0] == 10  # SASL
        assert b"SCRAM-SHA-256" in body
        # a garbage SASL response: FATAL, the connection closes
        r.send(msg(b"p", cstr("SCRAM-SHA-256") + struct.pack("!i", 3) + b"xyz"))
        k, body = r.read()
        assert k == b"E"
        assert error_fields(body)["S"] == "FATAL"
    finally:
        r.close()
    # an unknown user fails like a wrong password (no user enumeration)
    for user, password in (("mallory", PASSWORD), (USER, "wrong")):
        r = Raw(pg_server.port)
        try:
            k, body = r.login(user, password)[-1]
            assert k == b"E"
            fields = error_fields(body)
            assert fields["C"] == "28P01"
            assert fields["M"] == f'password authentication failed for user "{user}"'
        finally:
            r.close()
    _select_one(pg_server)


LONG_QUERY = (
    "SELECT count(*) FROM big a CROSS JOIN (SELECT v FROM big WHERE id < 4000) b "
    "WHERE a.v * b.v = -1.5"
)


def test_cancel_stops_the_running_query(pg_server: Server) -> None:
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        result: dict[str, object] = {}
        th = _run_long(c, result, LONG_QUERY)
        time.sleep(0.5)
        t_cancel = time.monotonic()
        c.cancel()
        th.join(60)
        assert result["outcome"] == "57014"
        assert time.monotonic() - t_cancel < 2.0  # the client got its answer right away
        # the connection goes on
        assert c.execute("SELECT 41 + 1").fetchone() == (42,)


# about 12 s of CPU on two cores: long enough that a cancel which does not stop
# the engine is seen, bounded if it does not
ENGINE_LONG = "SELECT sum(sqrt(number)) FROM numbers(10000000000)"


def _run_long(c: object, result: dict[str, object], sql: str = ENGINE_LONG) -> threading.Thread:
    import psycopg

    def run() -> None:
        t0 = time.monotonic()
        try:
            c.execute(sql).fetchall()  # type: ignore[attr-defined]
            result["outcome"] = "finished"
        except psycopg.errors.QueryCanceled as e:
            result["outcome"] = e.sqlstate
        result["elapsed"] = time.monotonic() - t0

    th = threading.Thread(target=run)
    th.start()
    return th


def test_cancel_stops_the_engine_work(pg_server: Server) -> None:
    import psycopg

    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        count = c.execute("SELECT count(*) FROM transactions").fetchone()
        result: dict[str, object] = {}
        th = _run_long(c, result)
        time.sleep(1.0)
        t_cancel = time.monotonic()
        c.cancel()
        th.join(60)
        assert result["outcome"] == "57014"
        assert time.monotonic() - t_cancel < 2.0
        # the engine query really stopped: the next engine statement on the same
        # connection does not wait behind it
        t0 = time.monotonic()
        assert c.execute("SELECT count(*) FROM transactions").fetchone() == count
        assert time.monotonic() - t0 < 2.0
    _select_one(pg_server)


def test_short_engine_query_runs_beside_a_long_one(pg_server: Server) -> None:
    import psycopg

    with (
        psycopg.connect(pg_server.dsn, autocommit=True) as a,
        psycopg.connect(pg_server.dsn, autocommit=True) as b,
    ):
        count = b.execute("SELECT count(*) FROM transactions").fetchone()
        result: dict[str, object] = {}
        th = _run_long(a, result)
        try:
            time.sleep(0.5)
            for _ in range(3):
                t0 = time.monotonic()
                assert b.execute("SELECT count(*) FROM transactions").fetchone() == count
                assert b.execute(
                    "SELECT count(*) FROM transactions WHERE customer_id = %s", (1,)
                ).fetchone() == (2,)
                assert time.monotonic() - t0 < 2.0
            assert "outcome" not in result  # the long one was running all along
        finally:
            a.cancel()
            th.join(60)
        assert result["outcome"] == "57014"


STREAM_CLIENT = """
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as c:
    for _ in range(3):
        assert len(c.execute("SELECT id, v, s FROM big").fetchall()) == 200_000
    c.execute("SELECT count(*) FROM big a CROSS JOIN "
              "(SELECT v FROM big WHERE id < 1500) b WHERE a.v = b.v")
print("streamed")
"""


def test_long_query_does_not_stall_other_connections(pg_server: Server) -> None:
    import sys

    import psycopg

    # the long work runs in another process, so this process's GIL measures only the server
    proc = subprocess.Popen(
        [sys.executable, "-c", STREAM_CLIENT, pg_server.dsn], stdout=subprocess.PIPE, text=True
    )
    latencies = []
    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        while proc.poll() is None:
            t0 = time.monotonic()
            assert c.execute("SELECT 1").fetchone() == (1,)
            assert c.execute(
                "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = %s", ("big",)
            ).fetchone() == (1,)
            latencies.append(time.monotonic() - t0)
            time.sleep(0.01)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "streamed" in out
    assert len(latencies) > 5
    assert max(latencies) < 0.5, sorted(latencies)[-5:]


def test_bad_frames_get_errors_and_the_server_goes_on(pg_server: Server) -> None:
    # invalid UTF-8 in a query: an ErrorResponse, and the session continues
    r = Raw(pg_server.port)
    try:
        r.login(USER, PASSWORD)
        msgs = r.query(b"SELECT '\xff\xfe'")
        errs = [error_fields(b) for k, b in msgs if k == b"E"]
        assert errs and errs[0]["C"] == "22021"
        assert data_rows(r.query("SELECT 7")) == [[b"7"]]
        # Bind to an unknown statement, then Sync: error, then ready again
        r.send(msg(b"B", cstr("") + cstr("nope") + b"\0\0\0\0\0\0") + msg(b"S"))
        msgs = r.until(b"Z")
        assert error_fields(msgs[0][1])["C"] == "26000"
        # an unknown message type: FATAL protocol violation, connection closed
        r.send(msg(b"~", b"junk"))
        k, body = r.read()
        assert k == b"E" and error_fields(body)["C"] == "08P01"
        with pytest.raises((ConnectionError, OSError)):
            r.read()
    finally:
        r.close()
    # an absurd length: refused and closed
    r = Raw(pg_server.port)
    try:
        r.login(USER, PASSWORD)
        r.send(b"Q" + struct.pack("!i", 0x7FFFFFF0))
        k, body = r.read()
        assert k == b"E" and error_fields(body)["C"] == "08P01"
    finally:
        r.close()
    # a truncated startup packet, then the client vanishes
    s = socket.create_connection(("127.0.0.1", pg_server.port))
    s.sendall(struct.pack("!i", 100) + b"\x00\x03")
    s.close()
    # a client that vanishes in the middle of a large result
    r = Raw(pg_server.port)
    r.login(USER, PASSWORD)
    r.send(msg(b"Q", cstr("SELECT * FROM big")))
    r.recv_exact(1000)
    r.close()
    _select_one(pg_server)


def test_extended_protocol_row_limits(pg_server: Server) -> None:
    r = Raw(pg_server.port)
    try:
        r.login(USER, PASSWORD)
        q = "SELECT id FROM big WHERE id < $1 ORDER BY id"
        r.send(
            msg(b"P", cstr("s1") + cstr(q) + struct.pack("!hi", 1, 20))
            + msg(
                b"B",
                cstr("p1")
                + cstr("s1")
                + struct.pack("!hhi", 0, 1, 2)
                + b"10"
                + struct.pack("!h", 0),
            )
            + msg(b"D", b"P" + cstr("p1"))
            + msg(b"E", cstr("p1") + struct.pack("!i", 4))
            + msg(b"E", cstr("p1") + struct.pack("!i", 4))
            + msg(b"E", cstr("p1") + struct.pack("!i", 4))
            + msg(b"S")
        )
        msgs = r.until(b"Z")
        kinds = [k for k, _ in msgs]
        assert kinds == [b"1", b"2", b"T"] + [b"D"] * 4 + [b"s"] + [b"D"] * 4 + [b"s"] + [
            b"D"
        ] * 2 + [b"C", b"Z"]
        assert [int(row[0]) for row in data_rows(msgs)] == list(range(10))
        assert msgs[-2][1] == b"SELECT 10\0"
        # the named statement is reusable; Close removes it
        r.send(msg(b"C", b"S" + cstr("s1")) + msg(b"S"))
        assert [k for k, _ in r.until(b"Z")] == [b"3", b"Z"]
    finally:
        r.close()


def test_bind_with_the_wrong_parameter_count_is_an_error_not_fatal(pg_server: Server) -> None:
    r = Raw(pg_server.port)
    try:
        r.login(USER, PASSWORD)
        q = "SELECT id FROM big WHERE id < $1 ORDER BY id"
        bind_none = msg(b"B", cstr("") + cstr("s2") + struct.pack("!hhh", 0, 0, 0))
        r.send(
            msg(b"P", cstr("s2") + cstr(q) + struct.pack("!hi", 1, 20))
            + bind_none
            + msg(b"E", cstr("") + struct.pack("!i", 0))  # skipped until Sync
            + msg(b"S")
        )
        msgs = r.until(b"Z")
        assert [k for k, _ in msgs] == [b"1", b"E", b"Z"]
        err = error_fields(msgs[1][1])
        assert err["S"] == "ERROR" and err["C"] == "08P01"
        assert err["M"] == (
            'bind message supplies 0 parameters, but prepared statement "s2" requires 1'
        )
        # too many parameters, too
        two = struct.pack("!hhi", 0, 2, 1) + b"3" + struct.pack("!i", 1) + b"4"
        r.send(msg(b"B", cstr("") + cstr("s2") + two + struct.pack("!h", 0)) + msg(b"S"))
        msgs = r.until(b"Z")
        assert [k for k, _ in msgs] == [b"E", b"Z"]
        assert "supplies 2 parameters" in error_fields(msgs[0][1])["M"]
        # the session and the prepared statement go on
        one = struct.pack("!hhi", 0, 1, 1) + b"3" + struct.pack("!h", 0)
        r.send(
            msg(b"B", cstr("") + cstr("s2") + one)
            + msg(b"E", cstr("") + struct.pack("!i", 0))
            + msg(b"S")
        )
        msgs = r.until(b"Z")
        assert data_rows(msgs) == [[b"0"], [b"1"], [b"2"]]
        assert data_rows(r.query("SELECT 7")) == [[b"7"]]
    finally:
        r.close()


def test_configured_postgresql_replaces_the_embedded_mirror(tmp_path: Path) -> None:
    import psycopg
    import sqlalchemy as sa
    from service_checks import require_service

    from .conftest import make_store

    require_service("postgres")
    path = tmp_path / "store"
    make_store(path)
    server = start_server(path, "--mirror-url", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        engine = sa.create_engine(server.url)
        try:
            insp = sa.inspect(engine)
            assert {"transactions", "big", "types_fg"} <= set(insp.get_table_names())
            assert insp.get_pk_constraint("big")["constrained_columns"] == ["id"]
        finally:
            engine.dispose()
        with psycopg.connect(server.dsn, autocommit=True) as c:
            assert c.execute("SELECT current_database()").fetchone() == ("default",)
            assert c.execute("SELECT count(*) FROM big").fetchone() == (200_000,)
    finally:
        server.stop()


def test_many_clients_at_once(pg_server: Server) -> None:
    import concurrent.futures

    import psycopg

    def client(i: int) -> int:
        done = 0
        with psycopg.connect(pg_server.dsn, autocommit=i % 2 == 0) as c:
            for k in range(15):
                cid = 1 + (i + k) % 3
                got = c.execute(
                    "SELECT count(*) FROM transactions WHERE customer_id = %s", (cid,)
                ).fetchone()
                assert got == ((2,) if cid == 1 else (1,))
                assert c.execute("SELECT %s::int + 1", (k,)).fetchone() == (k + 1,)
                assert c.execute("SELECT 1").fetchone() == (1,)
                done += 1
        return done

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(client, range(16)))
    assert results == [15] * 16


def _parse_bind_execute(name: str, text: str) -> bytes:
    return (
        msg(b"P", cstr(name) + cstr(text) + struct.pack("!h", 0))
        + msg(b"B", cstr("") + cstr(name) + struct.pack("!hhh", 0, 0, 0))
        + msg(b"D", b"P" + cstr(""))
        + msg(b"E", cstr("") + struct.pack("!i", 0))
        + msg(b"S")
    )


def test_parse_reports_syntax_errors_of_engine_statements(pg_server: Server) -> None:
    r = Raw(pg_server.port)
    try:
        r.login(USER, PASSWORD)
        cases = [
            ("SELECT amount FROM transactions WHERE", "38"),  # plain SQL over a feature group
            ("SELECT FEATURES FROM", "21"),  # FSQL
            ("CREATE FEATURE GROUP", "21"),
            # the query of a DECLARE: the position is in the whole text
            ("DECLARE c CURSOR FOR SELECT amount FROM transactions WHERE", "59"),
        ]
        for text, position in cases:
            # the ErrorResponse answers Parse; Bind/Describe/Execute are skipped up to Sync
            r.send(_parse_bind_execute("bad", text))
            msgs = r.until(b"Z")
            assert [k for k, _ in msgs] == [b"E", b"Z"], text
            err = error_fields(msgs[0][1])
            assert (err["S"], err["C"], err["P"]) == ("ERROR", "42601", position), text
            assert err["M"].startswith("syntax error"), err
            assert msgs[1][1] == b"I"
            # the failed Parse made no statement
            r.send(msg(b"B", cstr("") + cstr("bad") + struct.pack("!hhh", 0, 0, 0)) + msg(b"S"))
            msgs = r.until(b"Z")
            assert error_fields(msgs[0][1])["C"] == "26000"
        # Parse runs nothing: an error only execution can find comes after Bind
        r.send(
            msg(b"P", cstr("drop") + cstr("DROP FEATURE GROUP no_such_group") + b"\0\0") + msg(b"S")
        )
        assert [k for k, _ in r.until(b"Z")] == [b"1", b"Z"]
        r.send(
            msg(b"B", cstr("") + cstr("drop") + struct.pack("!hhh", 0, 0, 0))
            + msg(b"E", cstr("") + struct.pack("!i", 0))
            + msg(b"S")
        )
        msgs = r.until(b"Z")
        assert [k for k, _ in msgs] == [b"2", b"E", b"Z"]
        assert error_fields(msgs[1][1])["C"] == "42P01"
        # a valid statement of the same session still runs
        r.send(_parse_bind_execute("ok", "SELECT name FROM transactions WHERE customer_id = 2"))
        msgs = r.until(b"Z")
        assert [k for k, _ in msgs] == [b"1", b"2", b"T", b"D", b"C", b"Z"]
        assert data_rows(msgs) == [[b"b"]]
    finally:
        r.close()


def test_parse_error_messages_match_postgresql() -> None:
    """The same messages to the real PostgreSQL: its Parse of a syntax error
    answers ErrorResponse and skips the rest up to Sync, as fsql's does."""
    from service_checks import require_service

    require_service("postgres")
    r = Raw(5432)
    try:
        body = struct.pack("!i", 196608) + cstr("user") + cstr("postgres")
        body += cstr("database") + cstr("test") + b"\0"
        r.send(struct.pack("!i", len(body) + 4) + body)
        r.until(b"Z")
        r.send(_parse_bind_execute("bad", "SELECT a FROM t WHERE"))
        msgs = r.until(b"Z")
        assert [k for k, _ in msgs] == [b"E", b"Z"]
        err = error_fields(msgs[0][1])
        assert (err["C"], err["P"]) == ("42601", "22")
    finally:
        r.close()
