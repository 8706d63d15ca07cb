"""Pre-authentication limits: message sizes, connection counts, the login
timeout. An unauthenticated client must not be able to make the server
buffer much, hold many connections, or keep one forever."""

from __future__ import annotations

import os
import struct
import subprocess
import threading
import time

import psutil
import psycopg
import pytest

from .conftest import PASSWORD, USER, Server, make_store, start_server
from .rawclient import Raw, cstr, error_fields, msg, startup_packet

MiB = 2**20
ANNOUNCED = 60 * MiB


def _fatal(r: Raw) -> dict[str, str]:
    """The FATAL ErrorResponse the server answers with; then it closes."""
    k, body = r.read()
    assert k == b"E", (k, body)
    fields = error_fields(body)
    assert fields["S"] == "FATAL", fields
    return fields


def _closed(r: Raw, within: float = 5.0) -> bool:
    """True when the server closes the connection within ``within`` seconds."""
    r.sock.settimeout(within)
    try:
        while True:
            data = r.sock.recv(65536)
            if not data:
                return True
    except (ConnectionError, OSError) as e:
        return not isinstance(e, TimeoutError)


def _rss(server: Server) -> int:
    return int(psutil.Process(server.proc.pid).memory_info().rss)


def _pump(r: Raw, total: int, sent: list[int]) -> None:
    """Send ``total`` bytes of a message body, until the server closes."""
    chunk = b"\0" * MiB
    try:
        while sent[0] < total:
            r.sock.sendall(chunk)
            sent[0] += len(chunk)
    except OSError:
        pass


def _sasl_started(port: int) -> Raw:
    """A connection that has sent its startup packet and got AuthenticationSASL."""
    r = Raw(port)
    r.send(startup_packet(USER))
    k, body = r.read()
    assert k == b"R" and struct.unpack("!i", body[:4])[0] == 10, (k, body)
    return r


def test_oversized_messages_before_login_are_refused_and_memory_stays_flat(
    pg_server: Server,
) -> None:
    time.sleep(0.5)
    before = _rss(pg_server)
    conns: list[Raw] = []
    pumps: list[threading.Thread] = []
    sent: list[list[int]] = []
    try:
        # 8 connections announce a 60 MiB SASL response and stream its body
        for _ in range(8):
            r = _sasl_started(pg_server.port)
            r.send(b"p" + struct.pack("!i", ANNOUNCED + 4))
            counter = [0]
            t = threading.Thread(target=_pump, args=(r, ANNOUNCED - MiB, counter), daemon=True)
            t.start()
            conns.append(r)
            pumps.append(t)
            sent.append(counter)
        for r in conns:
            start = time.monotonic()
            fields = _fatal(r)
            assert fields["C"] == "08P01", fields
            assert fields["M"] == f"invalid message length {ANNOUNCED + 4}"
            assert "8192" in fields["D"]
            assert time.monotonic() - start < 5
            assert _closed(r)
        for t in pumps:
            t.join(30)
            assert not t.is_alive()
        # the server stopped reading: nowhere near 60 MiB went through
        assert max(c[0] for c in sent) < 16 * MiB, [c[0] for c in sent]
        # 8 connections announce a 60 MiB startup packet
        for _ in range(8):
            r = Raw(pg_server.port)
            conns.append(r)
            r.send(struct.pack("!ii", ANNOUNCED, 196608) + b"\0" * 65536)
            fields = _fatal(r)
            assert fields["C"] == "08P01"
            assert fields["M"] == "invalid length of startup packet"
            assert _closed(r)
        time.sleep(0.5)
        after = _rss(pg_server)
    finally:
        for r in conns:
            r.close()
    print(
        f"server RSS before {before / MiB:.1f} MiB, after {after / MiB:.1f} MiB;"
        f" at most {max(c[0] for c in sent) / MiB:.0f} MiB of a body went out"
    )
    # before the limit, each connection buffered its 60 MiB (+474 MiB for 8)
    assert after - before < 32 * MiB, (before, after)
    # an ordinary login still works, and so does a query
    r = Raw(pg_server.port)
    try:
        assert r.login(USER, PASSWORD)[-1][0] == b"Z"
        assert r.query("SELECT 1")[-1][0] == b"Z"
    finally:
        r.close()


def test_a_long_scram_message_is_refused(pg_server: Server) -> None:
    # a SASLInitialResponse just over the limit, sent in full
    r = _sasl_started(pg_server.port)
    try:
        body = cstr("SCRAM-SHA-256") + struct.pack("!i", 8200) + b"n,,n=,r=" + b"a" * 8192
        r.send(msg(b"p", body))
        fields = _fatal(r)
        assert fields["C"] == "08P01"
        assert fields["M"].startswith("invalid message length")
        assert _closed(r)
    finally:
        r.close()


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Server:
    path = tmp_path_factory.mktemp("limits") / "store"
    make_store(path)
    server = start_server(
        path, "--max-connections", "3", "--max-startup", "2", "--auth-timeout", "3"
    )
    try:
        yield server  # type: ignore[misc]
    finally:
        server.stop()


def _psql(server: Server, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(server.port), "-U", USER,
         "-d", "default", "-c", sql],
        env={**os.environ, "PGPASSWORD": PASSWORD, "PGCONNECT_TIMEOUT": "10"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_too_many_authenticating_connections(limited: Server) -> None:
    idle = [Raw(limited.port), Raw(limited.port)]  # connected, no startup packet yet
    try:
        time.sleep(0.3)
        r = Raw(limited.port)
        try:
            r.send(startup_packet(USER))
            fields = _fatal(r)
            assert fields["C"] == "53300"
            assert "too many connections" in fields["M"] and "max_startup is 2" in fields["M"]
            assert _closed(r)
        finally:
            r.close()
        with pytest.raises(psycopg.OperationalError, match="too many connections"):
            psycopg.connect(limited.dsn, connect_timeout=10).close()
        out = _psql(limited, "SELECT 1")
        assert out.returncode == 2 and "too many connections" in out.stderr, out
    finally:
        for r in idle:
            r.close()
    time.sleep(0.3)
    with psycopg.connect(limited.dsn, autocommit=True, connect_timeout=10) as c:
        assert c.execute("SELECT count(*) FROM transactions").fetchone() == (4,)


def test_refusals_in_progress_are_capped(limited: Server) -> None:
    # 2 authenticating connections fill max_startup; 2 more are being refused
    # (they have not sent their startup packets); the next is closed at once
    held = [Raw(limited.port) for _ in range(4)]
    try:
        time.sleep(0.3)
        r = Raw(limited.port)
        try:
            start = time.monotonic()
            assert _closed(r, within=2.0)
            assert time.monotonic() - start < 2.0
        finally:
            r.close()
    finally:
        for r in held:
            r.close()


def test_connection_limit_holds_and_a_client_connects_afterwards(limited: Server) -> None:
    clients = [psycopg.connect(limited.dsn, autocommit=True, connect_timeout=10) for _ in range(3)]
    try:
        for c in clients:
            assert c.execute("SELECT 1").fetchone() == (1,)
        r = Raw(limited.port)
        try:
            r.send(startup_packet(USER))
            fields = _fatal(r)
            assert fields["C"] == "53300"
            assert fields["M"] == "sorry, too many connections already (max_connections is 3)"
        finally:
            r.close()
        with pytest.raises(psycopg.OperationalError, match="too many connections"):
            psycopg.connect(limited.dsn, connect_timeout=10).close()
        out = _psql(limited, "SELECT 1")
        assert out.returncode == 2 and "too many connections" in out.stderr, out
        # a cancel request still gets through at the limit (as in PostgreSQL)
        canceller = threading.Timer(1.0, clients[0].cancel)
        canceller.start()
        start = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            clients[0].execute(
                "SELECT count(*) FROM big a CROSS JOIN (SELECT v FROM big WHERE id < 4000) b "
                "WHERE a.v * b.v = -1.5"
            )
        assert time.monotonic() - start < 8
        canceller.join()
    finally:
        clients.pop().close()
    # one slot is free again: a normal client connects
    time.sleep(0.3)
    with psycopg.connect(limited.dsn, autocommit=True, connect_timeout=10) as c:
        assert c.execute("SELECT name FROM transactions WHERE customer_id = 2").fetchone() == ("b",)
    for c in clients:
        c.close()
    time.sleep(0.3)
    out = _psql(limited, "SELECT count(*) FROM transactions")
    assert (out.returncode, out.stdout.strip()) == (0, "4"), out


def test_a_login_that_does_not_finish_is_closed(limited: Server) -> None:
    # nothing sent; half a startup packet; a startup packet but no SASL response
    silent = Raw(limited.port)
    half = Raw(limited.port)
    try:
        half.send(struct.pack("!i", 40) + b"\0\3")
        start = time.monotonic()
        assert _closed(silent, within=10)
        assert _closed(half, within=10)
        elapsed = time.monotonic() - start
        assert 2.0 < elapsed < 8.0, elapsed
    finally:
        silent.close()
        half.close()
    r = _sasl_started(limited.port)
    try:
        start = time.monotonic()
        fields = _fatal(r)
        assert fields["C"] == "57014"
        assert fields["M"] == "canceling authentication due to timeout"
        assert 2.0 < time.monotonic() - start < 8.0
    finally:
        r.close()
    # the slots are free again
    with psycopg.connect(limited.dsn, autocommit=True, connect_timeout=10) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
