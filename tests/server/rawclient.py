"""A minimal PostgreSQL v3 client over a raw socket, for protocol-level tests."""

from __future__ import annotations

import socket
import struct

from fsql.server.auth import ScramClient


def msg(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def cstr(s: str | bytes) -> bytes:
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def startup_packet(user: str, database: str = "default") -> bytes:
    body = (
        struct.pack("!i", 196608)
        + cstr("user")
        + cstr(user)
        + cstr("database")
        + cstr(database)
        + b"\0"
    )
    return struct.pack("!i", len(body) + 4) + body


class Raw:
    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read(self) -> tuple[bytes, bytes]:
        head = self.recv_exact(5)
        n = struct.unpack("!i", head[1:])[0]
        return head[:1], self.recv_exact(n - 4)

    def until(self, kind: bytes) -> list[tuple[bytes, bytes]]:
        out = []
        while True:
            k, body = self.read()
            out.append((k, body))
            if k == kind:
                return out

    def login(self, user: str, password: str) -> list[tuple[bytes, bytes]]:
        self.send(startup_packet(user))
        k, body = self.read()
        assert k == b"R", (k, body)
        code = struct.unpack("!i", body[:4])[0]
        if code == 10:
            scram = ScramClient(password)
            first = scram.first()
            self.send(msg(b"p", cstr("SCRAM-SHA-256") + struct.pack("!i", len(first)) + first))
            k, body = self.read()
            assert k == b"R" and struct.unpack("!i", body[:4])[0] == 11, (k, body)
            self.send(msg(b"p", scram.final(body[4:])))
        out = []
        while True:  # up to ReadyForQuery, or the FATAL error of a failed login
            k, body = self.read()
            out.append((k, body))
            if k in (b"Z", b"E"):
                return out

    def query(self, text: str | bytes) -> list[tuple[bytes, bytes]]:
        self.send(msg(b"Q", cstr(text)))
        return self.until(b"Z")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def error_fields(body: bytes) -> dict[str, str]:
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode(errors="replace")
    return out


def data_rows(messages: list[tuple[bytes, bytes]]) -> list[list[bytes | None]]:
    rows = []
    for k, body in messages:
        if k != b"D":
            continue
        n = struct.unpack("!h", body[:2])[0]
        pos, row = 2, []
        for _ in range(n):
            ln = struct.unpack("!i", body[pos : pos + 4])[0]
            pos += 4
            if ln < 0:
                row.append(None)
            else:
                row.append(body[pos : pos + ln])
                pos += ln
        rows.append(row)
    return rows
