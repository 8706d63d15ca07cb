"""PostgreSQL protocol v3 message codec: building backend messages and
reading frontend ones. Pure functions over bytes, no I/O."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from fsql.errors import FsqlError

PROTOCOL_V3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102

# PostgreSQL's limit for a startup packet
MAX_STARTUP = 10_000
# a message before authentication (SASL): a few kilobytes, so an
# unauthenticated client cannot make the server buffer a large one
MAX_AUTH_MESSAGE = 8192
MAX_MESSAGE = 64 * 1024 * 1024

_I = struct.Struct("!i")
_H = struct.Struct("!h")
_IH = struct.Struct("!ih")

# PostgreSQL's standard port: a real PostgreSQL may listen there, so fsql's
# endpoint never takes it; it is the default port of a configured mirror URL
POSTGRESQL_PORT = 5432


class ProtocolViolation(FsqlError):
    sqlstate = "08P01"


def msg(kind: bytes, body: bytes = b"") -> bytes:
    return kind + _I.pack(len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.encode() + b"\0"


def auth_ok() -> bytes:
    return msg(b"R", _I.pack(0))


def auth_sasl(mechanisms: Iterable[str]) -> bytes:
    return msg(b"R", _I.pack(10) + b"".join(cstr(m) for m in mechanisms) + b"\0")


def auth_sasl_continue(data: bytes) -> bytes:
    return msg(b"R", _I.pack(11) + data)


def auth_sasl_final(data: bytes) -> bytes:
    return msg(b"R", _I.pack(12) + data)


def parameter_status(name: str, value: str) -> bytes:
    return msg(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, secret: int) -> bytes:
    return msg(b"K", struct.pack("!ii", pid, secret))


def ready_for_query(status: bytes = b"I") -> bytes:
    return msg(b"Z", status)


def command_complete(tag: str) -> bytes:
    return msg(b"C", cstr(tag))


PARSE_COMPLETE = msg(b"1")
BIND_COMPLETE = msg(b"2")
CLOSE_COMPLETE = msg(b"3")
NO_DATA = msg(b"n")
PORTAL_SUSPENDED = msg(b"s")
EMPTY_QUERY = msg(b"I")
COPY_DONE = msg(b"c")


def parameter_description(oids: Iterable[int]) -> bytes:
    oids = list(oids)
    return msg(b"t", _H.pack(len(oids)) + b"".join(_I.pack(o) for o in oids))


def row_description(fields: Iterable[tuple[str, int, int, int]]) -> bytes:
    """``fields``: (name, type oid, type size, format code)."""
    fields = list(fields)
    parts = [_H.pack(len(fields))]
    for name, oid, size, fmt in fields:
        parts.append(cstr(name) + struct.pack("!ihihih", 0, 0, oid, size, -1, fmt))
    return msg(b"T", b"".join(parts))


def copy_out_response(ncols: int, fmt: int = 0) -> bytes:
    return msg(b"H", struct.pack("!bh", fmt, ncols) + _H.pack(fmt) * ncols)


def copy_data(data: bytes) -> bytes:
    return msg(b"d", data)


def error_response(
    message: str,
    sqlstate: str = "XX000",
    *,
    severity: str = "ERROR",
    position: int | None = None,
    hint: str | None = None,
    detail: str | None = None,
) -> bytes:
    fields = [b"S" + cstr(severity), b"V" + cstr(severity), b"C" + cstr(sqlstate)]
    fields.append(b"M" + cstr(message))
    if detail:
        fields.append(b"D" + cstr(detail))
    if hint:
        fields.append(b"H" + cstr(hint))
    if position is not None:
        fields.append(b"P" + cstr(str(position)))
    return msg(b"E", b"".join(fields) + b"\0")


def error_from(exc: FsqlError) -> bytes:
    return error_response(
        exc.message,
        exc.sqlstate,
        position=exc.position,
        hint=exc.hint,
        detail=getattr(exc, "detail", None),
    )


def notice(message: str, sqlstate: str = "00000") -> bytes:
    return error_response(message, sqlstate, severity="NOTICE")


class Reader:
    """Reads fields out of one message body; any overrun is a protocol violation."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def int32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise ProtocolViolation("message is too short")
        (v,) = _I.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(v)

    def int16(self) -> int:
        if self.pos + 2 > len(self.data):
            raise ProtocolViolation("message is too short")
        (v,) = _H.unpack_from(self.data, self.pos)
        self.pos += 2
        return int(v)

    def byte(self) -> bytes:
        if self.pos + 1 > len(self.data):
            raise ProtocolViolation("message is too short")
        b = self.data[self.pos : self.pos + 1]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolViolation("message is too short")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolViolation("unterminated string in message")
        raw = self.data[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FsqlError('invalid byte sequence for encoding "UTF8"', sqlstate="22021") from None

    def rest(self) -> bytes:
        b = self.data[self.pos :]
        self.pos = len(self.data)
        return b

    def done(self) -> bool:
        return self.pos >= len(self.data)


def parse_startup(body: bytes) -> dict[str, str]:
    """Key/value pairs of a v3 StartupMessage body (after the version)."""
    r = Reader(body)
    params: dict[str, str] = {}
    while not r.done():
        key = r.cstring()
        if not key:
            break
        params[key] = r.cstring()
    return params
