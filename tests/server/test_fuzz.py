"""Thousands of random and mutated protocol frames at a running server; then
a normal client still gets correct answers."""

from __future__ import annotations

import random
import socket
import struct

from .conftest import PASSWORD, USER, Server
from .rawclient import Raw, cstr, msg, startup_packet

SEED = 20261121
CONNECTIONS = 240
FRAMES_PER_CONNECTION = 25

QUERIES = [
    "SELECT 1",
    "SELECT name FROM transactions WHERE customer_id = $1",
    "SELECT relname FROM pg_catalog.pg_class LIMIT 2",
    "SELECT FEATURES amount",
    "SHOW search_path",
    "BEGIN",
    "COMMIT",
]


def valid_frames(rng: random.Random) -> list[bytes]:
    q = rng.choice(QUERIES)
    name = rng.choice(["", "s1", "p1"])
    return [
        msg(b"Q", cstr(q)),
        msg(b"P", cstr(name) + cstr(q) + struct.pack("!h", 0)),
        msg(
            b"B",
            cstr(name) + cstr(name) + struct.pack("!hhi", 0, 1, 1) + b"1" + struct.pack("!h", 0),
        ),
        msg(b"D", b"S" + cstr(name)),
        msg(b"D", b"P" + cstr(name)),
        msg(b"E", cstr(name) + struct.pack("!i", rng.choice([0, 1, 5]))),
        msg(b"C", b"S" + cstr(name)),
        msg(b"H"),
        msg(b"S"),
    ]


def mutate(frame: bytes, rng: random.Random) -> bytes:
    b = bytearray(frame)
    op = rng.randrange(7)
    if op == 0 and len(b) > 1:  # flip bytes
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 1:  # truncate
        b = b[: rng.randrange(len(b))]
    elif op == 2:  # lie about the length
        struct.pack_into(
            "!i", b, 1, rng.choice([0, 3, 4, len(b) + 50, -7, 2**31 - 1, rng.randrange(2**20)])
        )
    elif op == 3:  # invalid UTF-8 in the payload
        pos = rng.randrange(5, len(b)) if len(b) > 5 else len(b)
        b[pos:pos] = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x00"])
        struct.pack_into("!i", b, 1, len(b) - 1)
    elif op == 4:  # an unknown type byte
        b[0] = rng.randrange(256)
    elif op == 5:  # random bytes
        b = bytearray(rng.randbytes(rng.randint(1, 64)))
    # op 6: leave it valid
    return bytes(b)


def fuzz_after_login(port: int, rng: random.Random) -> int:
    sent = 0
    r = Raw(port, timeout=5)
    try:
        r.login(USER, PASSWORD)
        r.sock.settimeout(0.3)
        for _ in range(FRAMES_PER_CONNECTION):
            frame = mutate(rng.choice(valid_frames(rng)), rng)
            try:
                r.send(frame)
            except OSError:
                break
            sent += 1
        try:
            while r.sock.recv(65536):
                pass
        except (OSError, TimeoutError):
            pass
    finally:
        r.close()
    return sent


def fuzz_before_login(port: int, rng: random.Random) -> int:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        choice = rng.randrange(4)
        if choice == 0:
            data = rng.randbytes(rng.randint(1, 200))
        elif choice == 1:
            data = mutate(b"X" + startup_packet(USER), rng)[1:]
        elif choice == 2:
            data = struct.pack("!ii", 8, 80877103) + rng.randbytes(rng.randint(0, 50))
        else:
            data = startup_packet(USER) + msg(b"p", rng.randbytes(rng.randint(0, 100)))
        s.sendall(data)
        s.settimeout(0.3)
        try:
            while s.recv(65536):
                pass
        except (OSError, TimeoutError):
            pass
    finally:
        s.close()
    return 1


def test_fuzzed_frames_then_a_normal_client_works(pg_server: Server) -> None:
    import psycopg

    rng = random.Random(SEED)
    frames = 0
    for i in range(CONNECTIONS):
        if i % 3 == 0:
            frames += fuzz_before_login(pg_server.port, rng)
        else:
            frames += fuzz_after_login(pg_server.port, rng)
    assert frames >= 2000
    assert pg_server.alive()
    with psycopg.connect(pg_server.dsn, autocommit=True) as c:
        rows = c.execute("SELECT customer_id, name FROM transactions ORDER BY 1, 2").fetchall()
        assert rows == [(1, "a"), (1, "d"), (2, "b"), (3, "c")]
        assert c.execute(
            "SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'transactions'"
        ).fetchone() == (1,)
    assert "Traceback" not in pg_server.log.read_text()
