"""One client connection: startup, authentication, the simple and extended
query protocols, cursors, COPY and relaying catalog queries to the mirror."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import logging
import os
import re
import secrets
import struct
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from fsql.connectors.engine import CANCELED, CancelScope, QueryCanceled
from fsql.errors import FsqlError
from fsql.server import encode, fastpath, route
from fsql.server import protocol as p
from fsql.server.auth import MECHANISM, AuthFailed, ScramClient, ScramServer, mechanisms
from fsql.server.results import Rows, TableRows
from fsql.types import from_name

if TYPE_CHECKING:
    from fsql.server.server import Server

log = logging.getLogger("fsql.server")

BATCH_ROWS = 32768
_LEN = struct.Struct("!i")
TRACE = bool(os.environ.get("FSQL_TRACE"))
# how long a connection refused for too many connections may take to send
# its startup packet (it gets its FATAL 53300 then)
REFUSAL_TIMEOUT = 5.0
_TERMINAL = {
    "P": b"1",
    "B": b"2",
    "C": b"3",
    "DS": b"Tn",
    "DP": b"Tn",
    "E": b"CsI",
}


class Closed(Exception):
    """The client went away or must be disconnected."""


@dataclass
class Prepared:
    text: str
    route: route.Route
    param_oids: list[int]
    fields: list[encode.Field] | None = None  # as described (text formats)


@dataclass
class Portal:
    stmt: Prepared
    params: list[Any]
    formats: list[int]
    rows: Rows | None = None  # the result, as it is sent (streamed for queries)
    pos: int = 0  # rows of ``fast`` sent
    fields: list[encode.Field] | None = None
    done: bool = False
    rows_sent: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # an online lookup answered by fastpath: its rows and (fields, RowDescription, encoders)
    fast: list[tuple[Any, ...]] | None = None
    fast_enc: tuple[list[encode.Field], bytes, list[Any]] | None = None
    slow: bool = False  # the fast path does not apply: run it normally


class Backend:
    """A connection to the catalog mirror PostgreSQL, one per client session."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pid = 0
        self.secret = b""
        self.status = b"I"

    @classmethod
    async def connect(cls, server: Server, database: str, app: str, user: str = "") -> Backend:
        target = server.mirror.target
        assert target is not None
        if target.unix_path:
            r, w = await asyncio.open_unix_connection(target.unix_path)
        else:
            r, w = await asyncio.open_connection(target.host, target.port)
        b = cls(r, w)
        params = {
            "user": user or target.user,
            "database": database,
            "application_name": app or "fsql",
            "client_encoding": "UTF8",
            "DateStyle": "ISO, MDY",
            "TimeZone": "UTC",
            "IntervalStyle": "postgres",
            "extra_float_digits": "3",
        }
        body = (
            struct.pack("!i", p.PROTOCOL_V3)
            + b"".join(p.cstr(k) + p.cstr(v) for k, v in params.items())
            + b"\0"
        )
        w.write(struct.pack("!i", len(body) + 4) + body)
        scram: ScramClient | None = None
        while True:
            kind, raw = await b.read()
            payload = raw[5:]
            if kind == b"R":
                code = struct.unpack_from("!i", payload)[0]
                if code == 0:
                    continue
                if code == 3:  # cleartext
                    w.write(p.msg(b"p", p.cstr(target.password or "")))
                elif code == 10:
                    scram = ScramClient(target.password or "")
                    first = scram.first()
                    w.write(p.msg(b"p", p.cstr(MECHANISM) + struct.pack("!i", len(first)) + first))
                elif code == 11 and scram is not None:
                    w.write(p.msg(b"p", scram.final(payload[4:])))
                elif code == 12:
                    continue
                else:
                    raise FsqlError(
                        "the mirror asks for an unsupported authentication", sqlstate="08004"
                    )
            elif kind == b"K":
                b.pid = struct.unpack_from("!i", payload)[0]
                b.secret = payload[4:]
            elif kind == b"E":
                raise _error_of(payload)
            elif kind == b"Z":
                b.status = payload[:1]
                return b

    async def read(self) -> tuple[bytes, bytes]:
        head = await self.reader.readexactly(5)
        n = struct.unpack_from("!i", head, 1)[0]
        body = await self.reader.readexactly(n - 4)
        return head[:1], head + body

    def send(self, raw: bytes) -> None:
        self.writer.write(raw)

    def close(self) -> None:
        try:
            self.writer.write(p.msg(b"X"))
            self.writer.close()
        except Exception:
            pass


def _error_of(payload: bytes) -> FsqlError:
    fields: dict[str, str] = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return FsqlError(
        fields.get("M", "mirror error"),
        sqlstate=fields.get("C", "XX000"),
        hint=fields.get("H"),
        position=int(fields["P"]) if fields.get("P", "").isdigit() else None,
    )


class Session:
    def __init__(
        self,
        server: Server,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        refusal: FsqlError | None = None,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        # too many connections: answered with this FATAL once the startup
        # packet has come (a CancelRequest is still served, as in PostgreSQL)
        self.refusal = refusal
        self.tls = False
        self.authenticated = False
        self.pid = server.next_pid()
        self.secret = secrets.randbits(31)
        self.user = ""
        self.database = ""
        self.app = ""
        self.mirror_role = ""  # the mirror role the backend logs in as (see Mirror.role_for)
        self.backend: Backend | None = None
        self.backend_lock = asyncio.Lock()
        self.pending: list[str] = []  # forwarded extended messages awaiting replies
        self.backend_in_cycle = False
        self.statements: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        self.mirror_portals: set[str] = set()
        self.skip_until_sync = False
        self.canceled = asyncio.Event()
        self.busy_mirror = False
        self.out = bytearray()
        self.inbuf = bytearray()  # received, not yet handled (the message loop's)
        self.inpos = 0

    # plumbing ---------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Buffer ``data``; replies go out together at Sync, Flush or ReadyForQuery."""
        self.out += data
        if len(self.out) > 262144:
            self._push()

    def _push(self) -> None:
        if self.out:
            if self.writer.is_closing():
                raise Closed()
            self.writer.write(bytes(self.out))
            self.out.clear()

    async def flush(self) -> None:
        self._push()
        try:
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as e:
            raise Closed() from e

    async def read_exactly(self, n: int) -> bytes:
        try:
            return await self.reader.readexactly(n)
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            raise Closed() from e

    def status(self) -> bytes:
        return self.backend.status if self.backend is not None else b"I"

    # lifecycle --------------------------------------------------------------

    async def serve(self) -> None:
        timeout = self.server.config.auth_timeout
        if self.refusal is not None:
            timeout = min(timeout, REFUSAL_TIMEOUT)
        try:
            try:
                ok = await asyncio.wait_for(self.startup(), timeout)
            except TimeoutError:
                # PostgreSQL's authentication_timeout: the connection is closed
                log.info("connection %s: no login within %ss, closed", self.peer(), timeout)
                raise FsqlError(
                    "canceling authentication due to timeout", sqlstate="57014"
                ) from None
            if ok:
                self.server.register(self)
                await self.loop()
        except (Closed, TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        except FsqlError as e:  # fatal: startup, authentication, protocol
            try:
                self._push()
                self.writer.write(
                    p.error_response(
                        e.message, e.sqlstate, severity="FATAL", hint=e.hint, detail=e.detail
                    )
                )
                await asyncio.wait_for(self.writer.drain(), 5)
            except Exception:
                pass
        except Exception:
            log.exception("session failed")
        finally:
            self.canceled.set()
            self.server.unregister(self)
            if self.backend is not None:
                self.backend.close()
            for portal in self.portals.values():  # a client gone mid-stream
                if portal.rows is not None:
                    portal.rows.release()
            self.portals.clear()
            try:
                self.writer.close()
            except Exception:
                pass

    def peer(self) -> str:
        addr = self.writer.get_extra_info("peername")
        return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr or "local")

    async def startup(self) -> bool:
        while True:
            head = await self.read_exactly(4)
            n = struct.unpack("!i", head)[0]
            if n < 8 or n > p.MAX_STARTUP:
                raise p.ProtocolViolation(
                    "invalid length of startup packet",
                    detail=f"{n} bytes; a startup packet has 8 to {p.MAX_STARTUP}.",
                )
            body = await self.read_exactly(n - 4)
            code = struct.unpack_from("!i", body)[0]
            if code == p.SSL_REQUEST:
                if (
                    self.server.ssl_context is not None
                    and self.writer.get_extra_info("sslcontext") is None
                ):
                    self.writer.write(b"S")
                    await self.flush()
                    await self.writer.start_tls(self.server.ssl_context)
                    self.tls = True
                else:
                    self.writer.write(b"N")
                continue
            if code == p.GSSENC_REQUEST:
                self.writer.write(b"N")
                continue
            if code == p.CANCEL_REQUEST:
                if len(body) >= 12:
                    pid, secret = struct.unpack_from("!ii", body, 4)
                    await self.server.cancel(pid, secret)
                return False
            major, minor = code >> 16, code & 0xFFFF
            if major != 3:
                raise p.ProtocolViolation(
                    f"unsupported frontend protocol {major}.{minor}: server supports 3.0",
                    sqlstate="0A000",
                )
            params = p.parse_startup(body[4:])
            if minor > 0 or any(k.startswith("_pq_.") for k in params):
                unknown = [k for k in params if k.startswith("_pq_.")]
                self.write(
                    p.msg(
                        b"v",
                        struct.pack("!ii", 0, len(unknown)) + b"".join(p.cstr(u) for u in unknown),
                    )
                )
            break
        if self.refusal is not None:
            raise self.refusal
        self.user = params.get("user", "")
        if not self.user:
            raise FsqlError("no PostgreSQL user name specified in startup packet", sqlstate="28000")
        self.database = params.get("database") or self.user
        self.app = params.get("application_name", "")
        if not self.tls and not self.server.plaintext_allowed:
            host = self.peer().rpartition(":")[0] or self.peer()
            raise FsqlError(
                f'TLS is required: plaintext connection refused for host "{host}",'
                f' user "{self.user}", database "{self.database}", no encryption',
                sqlstate="28000",
                hint="Connect with TLS (sslmode=require, verify-ca or verify-full).",
            )
        await self.authenticate()
        self.server.authenticated(self)
        projects = await asyncio.to_thread(self.server.store.catalog.projects)
        if self.database not in projects:
            raise FsqlError(
                f'database "{self.database}" does not exist',
                sqlstate="3D000",
                hint="Each fsql project is a database: " + ", ".join(projects) + ".",
            )
        mirror = self.server.mirror
        role = mirror.cached_role(self.user)
        if role is None:  # first login of this user: its mirror role is made once
            role = await asyncio.to_thread(mirror.role_for, self.user)
        self.mirror_role = role
        self.write(p.auth_ok())
        for k, v in self.server.parameter_status(self).items():
            self.write(p.parameter_status(k, v))
        self.write(p.backend_key_data(self.pid, self.secret))
        self.write(p.ready_for_query(b"I"))
        await self.flush()
        return True

    async def authenticate(self) -> None:
        if self.server.auth == "trust":
            return
        verifier = await asyncio.to_thread(self.server.lookup_user, self.user)
        # SCRAM-SHA-256-PLUS (channel binding) is offered over TLS only
        binding = self.server.tls_end_point if self.tls else None
        offered = mechanisms(binding)
        self.write(p.auth_sasl(offered))
        await self.flush()
        kind, body = await self.read_message(p.MAX_AUTH_MESSAGE)
        if kind != b"p":
            raise p.ProtocolViolation("expected SASL response")
        r = p.Reader(body)
        mech = r.cstring()
        if mech not in offered:
            raise AuthFailed(
                "client selected an invalid SASL authentication mechanism", sqlstate="08P01"
            )
        scram = ScramServer(self.user, verifier, mechanism=mech, channel_binding=binding)
        n = r.int32()
        server_first = scram.first(r.take(n) if n >= 0 else b"")
        self.write(p.auth_sasl_continue(server_first))
        await self.flush()
        kind, body = await self.read_message(p.MAX_AUTH_MESSAGE)
        if kind != b"p":
            raise p.ProtocolViolation("expected SASL response")
        final = await asyncio.to_thread(scram.final, body)
        self.write(p.auth_sasl_final(final))

    async def read_message(self, limit: int = p.MAX_MESSAGE) -> tuple[bytes, bytes]:
        """One message; one longer than ``limit`` is refused before any of its
        body is read (before authentication the limit is a few kilobytes)."""
        head = await self.read_exactly(5)
        n = struct.unpack_from("!i", head, 1)[0]
        if n < 4:
            raise p.ProtocolViolation(f"invalid message length {n}")
        if n > limit:
            raise p.ProtocolViolation(
                f"invalid message length {n}",
                detail=f"Before authentication a message has at most {limit} bytes."
                if limit == p.MAX_AUTH_MESSAGE
                else f"A message has at most {limit} bytes.",
            )
        body = await self.read_exactly(n - 4) if n > 4 else b""
        return head[:1], body

    # the message loop -------------------------------------------------------

    async def next_message(self) -> tuple[bytes, bytes]:
        """:meth:`read_message` for the message loop: messages are cut out of
        a local buffer holding whatever has arrived, so a pipelined
        Bind/Describe/Execute/Sync costs one read, not two awaits per message."""
        buf = self.inbuf
        while True:
            pos = self.inpos
            have = len(buf) - pos
            if have >= 5:
                n = _LEN.unpack_from(buf, pos + 1)[0]
                if n < 4 or n > p.MAX_MESSAGE:
                    raise p.ProtocolViolation(f"invalid message length {n}")
                if have > n:
                    end = pos + 1 + n
                    kind, body = bytes(buf[pos : pos + 1]), bytes(buf[pos + 5 : end])
                    if end == len(buf):
                        buf.clear()
                        self.inpos = 0
                    else:
                        self.inpos = end
                    return kind, body
            if pos:
                del buf[:pos]
                self.inpos = 0
            try:
                data = await self.reader.read(262144)
            except ConnectionError as e:
                raise Closed() from e
            if not data:
                raise Closed()
            buf += data

    async def loop(self) -> None:
        while True:
            kind, body = await self.next_message()
            if TRACE:
                log.info("<- %s %r", kind, body[:200])
            if kind == b"X":
                return
            try:
                if kind == b"Q":
                    await self.simple_query(body)
                elif kind in b"PBDECH" and len(kind) == 1:
                    if self.skip_until_sync:
                        continue
                    await self.extended(kind, body)
                elif kind == b"S":
                    await self.sync()
                elif kind in (b"d", b"c", b"f"):
                    continue  # copy data outside COPY FROM: ignored, as PostgreSQL does
                else:
                    raise p.ProtocolViolation(f"invalid frontend message type {kind[0]}")
            except p.ProtocolViolation:
                raise
            except (Closed, ConnectionError, asyncio.IncompleteReadError):
                raise
            except Exception as exc:
                if isinstance(exc, FsqlError):
                    err = exc
                else:
                    # a bug or a library failure (e.g. while encoding a result):
                    # that statement fails with an SQLSTATE, the session goes on
                    log.exception("statement failed")
                    err = FsqlError(
                        f"internal error: {type(exc).__name__}: {exc}", sqlstate="XX000"
                    )
                if not isinstance(err, _Skip):
                    self.write(p.error_from(err))
                if kind == b"Q":
                    self.write(p.ready_for_query(self.status()))
                else:
                    self.skip_until_sync = True
                await self.flush()

    # simple query -----------------------------------------------------------

    async def simple_query(self, body: bytes) -> None:
        text = p.Reader(body).cstring()
        statements = route.split_statements(text)
        self.canceled.clear()
        if not statements:
            self.write(p.EMPTY_QUERY)
        else:
            # several mirror-only statements go over as one message
            routes = [route.classify(s) for s in statements]
            if len(statements) > 1 and all(r.kind == route.MIRROR for r in routes):
                await self.mirror_simple(text)
            else:
                for stmt, r in zip(statements, routes, strict=True):
                    try:
                        ok = await self.run_simple(stmt, r)
                    except _Skip:
                        ok = False
                    except FsqlError as e:
                        self.write(p.error_from(e))
                        ok = False
                    if not ok:
                        break
        self.write(p.ready_for_query(self.status()))
        await self.flush()

    async def run_simple(self, text: str, r: route.Route) -> bool:
        """Run one statement of a simple query; False after an error."""
        if r.kind == route.MIRROR:
            return await self.mirror_simple(text)
        if r.kind == route.EMPTY:
            self.write(p.EMPTY_QUERY)
            return True
        if r.kind == route.CONST:
            assert r.const is not None
            reply = r.cache.get("simple")
            if reply is None:  # answered without the engine; encoded once per text
                fields = encode.fields_for(r.const.schema, [])
                reply = (
                    p.row_description(encode.row_description_fields(fields))
                    + encode.data_rows(r.const, fields)
                    + p.command_complete("SELECT 1")
                )
                r.cache["simple"] = reply
            self.write(reply)
            return True
        portal = Portal(Prepared(text, r, []), [], [])
        await self.execute_portal(portal, 0, describe=True)
        return True

    # extended protocol --------------------------------------------------------

    async def extended(self, kind: bytes, body: bytes) -> None:
        rd = p.Reader(body)
        if kind == b"P":
            name = rd.cstring()
            text = rd.cstring()
            n = rd.int16()
            if n < 0:
                raise p.ProtocolViolation("negative parameter count")
            oids = [rd.int32() for _ in range(n)]
            r = route.classify(text) if len(route.split_statements(text)) <= 1 else None
            if r is None:
                raise FsqlError(
                    "cannot insert multiple commands into a prepared statement", sqlstate="42601"
                )
            if r.kind == route.MIRROR:
                await self.forward(kind, body, "P")
                self.statements[name] = Prepared(text, r, oids)
                return
            await self.drain_backend()
            if name and name in self.statements:
                raise FsqlError(f'prepared statement "{name}" already exists', sqlstate="42P05")
            await check_syntax(text, r)
            count = max(route.param_count(text), len(oids))
            oids = oids + [0] * (count - len(oids))
            if 0 in oids:
                known = await self.server.describe_params(self.database, text)
                if known is not None:
                    known = (known + [0] * count)[:count]
                    oids = [o or k for o, k in zip(oids, known, strict=True)]
            self.statements[name] = Prepared(text, r, oids)
            self.write(p.PARSE_COMPLETE)
        elif kind == b"B":
            portal_name = rd.cstring()
            stmt_name = rd.cstring()
            stmt = self.statements.get(stmt_name)
            if stmt is None:
                await self.drain_backend()
                raise FsqlError(
                    f'prepared statement "{stmt_name}" does not exist', sqlstate="26000"
                )
            if stmt.route.kind == route.MIRROR:
                await self.forward(kind, body, "B")
                self.mirror_portals.add(portal_name)
                self.drop_portal(portal_name)
                return
            await self.drain_backend()
            nf = rd.int16()
            pformats = [rd.int16() for _ in range(max(nf, 0))]
            nv = rd.int16()
            raw = []
            for _ in range(max(nv, 0)):
                ln = rd.int32()
                raw.append(None if ln == -1 else rd.take(ln))
            nr = rd.int16()
            rformats = [rd.int16() for _ in range(max(nr, 0))]
            if nv != len(stmt.param_oids):
                # an ERROR, not FATAL, as PostgreSQL sends it: the session goes on
                raise FsqlError(
                    f"bind message supplies {max(nv, 0)} parameters, but prepared statement "
                    f'"{stmt_name}" requires {len(stmt.param_oids)}',
                    sqlstate="08P01",
                )
            if nf > 1 and nf != nv:
                raise FsqlError(
                    f"bind message has {nf} parameter formats but {nv} parameters",
                    sqlstate="08P01",
                )
            values = []
            for i, v in enumerate(raw):
                fmt = pformats[0] if len(pformats) == 1 else (pformats[i] if pformats else 0)
                values.append(decode_param(v, stmt.param_oids[i], fmt))
            self.mirror_portals.discard(portal_name)
            self.drop_portal(portal_name)
            self.portals[portal_name] = Portal(stmt, values, rformats)
            self.write(p.BIND_COMPLETE)
        elif kind == b"D":
            what = rd.byte()
            name = rd.cstring()
            if what == b"S":
                stmt = self.statements.get(name)
                if stmt is not None and stmt.route.kind == route.MIRROR:
                    await self.forward(kind, body, "DS")
                    return
                await self.drain_backend()
                if stmt is None:
                    raise FsqlError(f'prepared statement "{name}" does not exist', sqlstate="26000")
                self.write(p.parameter_description([o or 25 for o in stmt.param_oids]))
                fields = await self.describe_statement(stmt)
                if fields:
                    self.write(p.row_description(encode.row_description_fields(fields)))
                else:
                    self.write(p.NO_DATA)
            elif what == b"P":
                if name in self.mirror_portals:
                    await self.forward(kind, body, "DP")
                    return
                await self.drain_backend()
                portal = self.portals.get(name)
                if portal is None:
                    raise FsqlError(f'portal "{name}" does not exist', sqlstate="34000")
                fields = await self.describe_portal(portal)
                if fields is _ALREADY_SENT:
                    return
                if fields:
                    self.write(p.row_description(encode.row_description_fields(fields)))
                else:
                    self.write(p.NO_DATA)
            else:
                raise p.ProtocolViolation("invalid DESCRIBE message subtype")
        elif kind == b"E":
            name = rd.cstring()
            max_rows = rd.int32()
            if name in self.mirror_portals:
                await self.forward(kind, body, "E")
                return
            await self.drain_backend()
            portal = self.portals.get(name)
            if portal is None:
                raise FsqlError(f'portal "{name}" does not exist', sqlstate="34000")
            self.canceled.clear()
            await self.execute_portal(portal, max(max_rows, 0), describe=False)
        elif kind == b"C":
            what = rd.byte()
            name = rd.cstring()
            if what == b"S":
                stmt = self.statements.get(name)
                if stmt is not None and stmt.route.kind == route.MIRROR:
                    self.statements.pop(name, None)
                    await self.forward(kind, body, "C")
                    return
                self.statements.pop(name, None)
            elif what == b"P":
                if name in self.mirror_portals:
                    self.mirror_portals.discard(name)
                    await self.forward(kind, body, "C")
                    return
                self.drop_portal(name)
            else:
                raise p.ProtocolViolation("invalid CLOSE message subtype")
            await self.drain_backend()
            self.write(p.CLOSE_COMPLETE)
        elif kind == b"H":
            await self.drain_backend()
            await self.flush()

    async def sync(self) -> None:
        self.skip_until_sync = False
        if self.backend is not None and self.backend_in_cycle:
            self.backend.send(p.msg(b"S"))
            self.pending.clear()
            await self.relay_until_ready()
            self.backend_in_cycle = False
        self.drop_portal("")
        self.write(p.ready_for_query(self.status()))
        await self.flush()

    # the mirror ----------------------------------------------------------------

    async def get_backend(self) -> Backend:
        if self.backend is None:
            try:
                self.backend = await Backend.connect(
                    self.server, self.database, self.app, self.mirror_role
                )
            except FsqlError:
                raise
            except OSError as e:
                raise FsqlError(
                    f"the catalog mirror is not reachable: {e}", sqlstate="08006"
                ) from None
        return self.backend

    async def forward(self, kind: bytes, body: bytes, what: str) -> None:
        b = await self.get_backend()
        b.send(p.msg(kind, body))
        self.pending.append(what)
        self.backend_in_cycle = True

    async def drain_backend(self) -> None:
        """Relay the replies to every forwarded message, so replies stay in order."""
        if not self.pending or self.backend is None:
            return
        b = self.backend
        b.send(p.msg(b"H"))
        while self.pending:
            kind, raw = await b.read()
            if kind in (b"N", b"S", b"A"):
                self.write(raw)
                continue
            if kind == b"E":
                self.write(raw)
                self.pending.clear()
                self.skip_until_sync = True
                raise _Skip("the mirror reported an error")
            self.write(raw)
            if kind in _TERMINAL[self.pending[0]]:
                self.pending.pop(0)

    async def relay_until_ready(self) -> None:
        assert self.backend is not None
        b = self.backend
        self.busy_mirror = True
        try:
            while True:
                kind, raw = await b.read()
                if kind == b"Z":
                    b.status = raw[5:6]
                    return
                if kind == b"G":  # COPY FROM STDIN: not a thing for the mirror
                    b.send(p.msg(b"f", p.cstr("COPY FROM STDIN is not supported by fsql")))
                    continue
                self.write(raw)
        finally:
            self.busy_mirror = False

    async def mirror_simple(self, text: str) -> bool:
        b = await self.get_backend()
        await self.drain_backend()
        b.send(p.msg(b"Q", p.cstr(older_client_catalog_sql(text))))
        failed = False
        self.busy_mirror = True
        try:
            while True:
                kind, raw = await b.read()
                if kind == b"Z":
                    b.status = raw[5:6]
                    return not failed
                if kind == b"G":
                    b.send(p.msg(b"f", p.cstr("COPY FROM STDIN is not supported by fsql")))
                    continue
                if kind == b"E":
                    failed = True
                self.write(raw)
        finally:
            self.busy_mirror = False

    # engine statements ------------------------------------------------------

    def drop_portal(self, name: str) -> None:
        """Forget a portal or cursor, releasing the stream it holds."""
        portal = self.portals.pop(name, None)
        if portal is not None and portal.rows is not None:
            portal.rows.release()

    async def run_engine(self, text: str, params: list[Any]) -> pa.Table:
        return await self.until_canceled(  # type: ignore[no-any-return]
            lambda scope: self.server.run_sql(text, params, self.database, scope)
        )

    async def open_rows(self, text: str, params: list[Any]) -> Rows:
        """Start a query whose rows stream from the engine as they are sent."""
        return await self.until_canceled(  # type: ignore[no-any-return]
            lambda scope: self.server.open_rows(text, params, self.database, scope)
        )

    async def until_canceled(self, start: Any) -> Any:
        """Run ``start(scope)`` (an engine call); a cancel of this session
        stops it and raises 57014."""
        scope = CancelScope()
        task = asyncio.ensure_future(start(scope))
        cancel = asyncio.ensure_future(self.canceled.wait())
        try:
            done, _ = await asyncio.wait({task, cancel}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancel.cancel()
        if task not in done:
            # run_sql stops the engine work: a call still queued never starts,
            # the engine statements of a running one are killed (see Server.stop)
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
            raise QueryCanceled(CANCELED)
        return task.result()

    async def describe_statement(self, stmt: Prepared) -> list[encode.Field] | None:
        if stmt.fields is not None:
            return stmt.fields
        r = stmt.route
        if r.kind == route.CONST and r.const is not None:
            stmt.fields = encode.fields_for(r.const.schema, [])
        elif r.kind in (route.ENGINE,) and r.returns_rows:
            table = await self.server.schema_of(
                stmt.text, [describe_value(o) for o in stmt.param_oids], self.database
            )
            stmt.fields = encode.fields_for(table.schema, []) if table.num_columns else []
        elif r.kind == route.FETCH and r.returns_rows:
            cursor = self.portals.get(r.name)
            stmt.fields = None
            if cursor is not None:
                await self.ensure_result(cursor)
                assert cursor.rows is not None
                return encode.fields_for(cursor.rows.schema, [])
            return None
        else:
            stmt.fields = []
        return stmt.fields

    async def describe_portal(self, portal: Portal) -> list[encode.Field] | None:
        r = portal.stmt.route
        if r.kind == route.FETCH:
            cursor = self.portals.get(r.name)
            if cursor is None or r.first != "fetch":
                return None
            await self.ensure_result(cursor)
            assert cursor.rows is not None
            fields = encode.fields_for(cursor.rows.schema, portal.formats)
            portal.fields = fields
            return fields
        if r.kind == route.DECLARE and not portal.extra.get("cursor"):
            return None  # DECLARE itself returns no rows
        if r.kind not in (route.ENGINE, route.CONST, route.DECLARE):
            return None
        if r.kind == route.ENGINE and await self.fast_lookup(portal):
            assert portal.fast_enc is not None
            portal.fields = portal.fast_enc[0]
            self.write(portal.fast_enc[1])
            return _ALREADY_SENT
        if r.kind == route.CONST:
            key = "desc:" + ",".join(map(str, portal.formats))
            cached = r.cache.get(key)
            if cached is None:
                assert r.const is not None
                r.cache[key] = cached = p.row_description(
                    encode.row_description_fields(encode.fields_for(r.const.schema, portal.formats))
                )
            self.write(cached)
            return _ALREADY_SENT
        await self.ensure_result(portal)
        assert portal.rows is not None
        if portal.rows.num_columns == 0:
            return None
        portal.fields = encode.fields_for(portal.rows.schema, portal.formats)
        return portal.fields

    async def ensure_result(self, portal: Portal) -> None:
        """Run the portal's statement: a query's rows stream (read as they
        are sent), other statements' results are materialized."""
        if portal.rows is not None:
            return
        r = portal.stmt.route
        if r.kind == route.CONST:
            assert r.const is not None
            portal.rows = TableRows(r.const)
        elif r.kind == route.DECLARE or r.kind == route.COPY:
            portal.rows = await self.open_rows(r.inner, portal.params)
        elif r.kind == route.ENGINE and r.returns_rows:
            portal.rows = await self.open_rows(portal.stmt.text, portal.params)
        else:
            result = await self.run_engine(portal.stmt.text, portal.params)
            if (
                r.first in _STATUS_WORDS
                and result.column_names == ["status"]
                and result.num_rows == 1
            ):
                # a DDL/DML status line: PostgreSQL sends it as the command tag
                status = str(result.column(0)[0].as_py() or "")
                if _TAG.fullmatch(status):
                    portal.extra["tag"] = status
                result = pa.table({})
            portal.rows = TableRows(result)
            if r.ddl:
                await self.server.catalog_changed()

    async def execute_portal(self, portal: Portal, max_rows: int, *, describe: bool) -> None:
        r = portal.stmt.route
        if r.kind == route.DECLARE:
            cursor = Portal(portal.stmt, portal.params, [], extra={"cursor": True})
            await self.ensure_result(cursor)
            self.drop_portal(r.name)
            self.portals[r.name] = cursor
            self.write(p.command_complete("DECLARE CURSOR"))
            return
        if r.kind == route.FETCH:
            found = self.portals.get(r.name)
            if found is None:
                raise FsqlError(f'cursor "{r.name}" does not exist', sqlstate="34000")
            cursor = found
            await self.ensure_result(cursor)
            assert cursor.rows is not None
            fields = portal.fields or encode.fields_for(cursor.rows.schema, portal.formats)
            if describe and r.first == "fetch":
                self.write(p.row_description(encode.row_description_fields(fields)))
            moved = 0
            if r.count != 0:  # None: ALL
                moved = await self.send_stream(
                    cursor.rows, fields, r.count or 0, skip=r.first != "fetch"
                )
            self.write(p.command_complete(f"{r.first.upper()} {moved}"))
            return
        if r.kind == route.CLOSE:
            if r.name == "all":
                for k in [k for k, v in self.portals.items() if v.stmt.route.kind == route.DECLARE]:
                    self.drop_portal(k)
            elif r.name not in self.portals:
                raise FsqlError(f'cursor "{r.name}" does not exist', sqlstate="34000")
            else:
                self.drop_portal(r.name)
            self.write(p.command_complete("CLOSE CURSOR"))
            return
        if r.kind == route.COPY:
            await self.ensure_result(portal)
            await self.send_copy(portal)
            return
        if r.kind == route.EMPTY:
            self.write(p.EMPTY_QUERY)
            return
        if r.kind == route.REFUSED:
            raise FsqlError(r.error, sqlstate="0A000", hint=r.hint or None)
        if r.kind == route.UNSUPPORTED:
            raise FsqlError(
                f"{r.first.upper()} {r.inner.upper()} is not supported: "
                "fsql cursors only move forward",
                sqlstate="0A000",
                hint="Use FETCH [FORWARD] n or FETCH ALL.",
            )
        if r.kind == route.MIRROR:  # a mirror statement inside DECLARE etc.: not reached
            raise FsqlError("statement cannot run here", sqlstate="0A000")
        if r.kind == route.CONST and max_rows == 0 and not describe:
            key = "rows:" + ",".join(map(str, portal.formats))
            reply = r.cache.get(key)
            if reply is None:
                assert r.const is not None
                fields = encode.fields_for(r.const.schema, portal.formats)
                reply = encode.data_rows(r.const, fields) + p.command_complete("SELECT 1")
                r.cache[key] = reply
            self.write(reply)
            return
        if r.kind == route.ENGINE and await self.fast_lookup(portal):
            if self.send_fast(portal, max_rows, describe=describe):
                return
            portal.fast, portal.slow = None, True
        await self.ensure_result(portal)
        rows = portal.rows
        assert rows is not None
        table = rows.table if isinstance(rows, TableRows) else rows.schema.empty_table()
        if rows.num_columns == 0:
            tag = portal.extra.get("tag") or command_tag(r, portal.stmt.text, table)
            self.write(p.command_complete(tag))
            portal.done = True
            return
        promised = portal.stmt.fields if portal.fields is None else None
        fields = portal.fields or encode.fields_for(
            conform(rows.schema.empty_table(), promised).schema if promised else rows.schema,
            portal.formats,
        )
        if describe:
            self.write(p.row_description(encode.row_description_fields(fields)))
        n = await self.send_stream(rows, fields, max_rows, conform_to=promised)
        portal.rows_sent += n
        if max_rows and n == max_rows:
            # as PostgreSQL: suspended whenever the limit was reached, so a
            # portal with exactly that many rows left completes on the next
            # Execute, with none
            self.write(p.PORTAL_SUSPENDED)
            return
        self.write(p.command_complete(command_tag(r, portal.stmt.text, table, portal.rows_sent)))
        portal.done = True

    async def fast_lookup(self, portal: Portal) -> bool:
        """Answer an online-lookup portal by :mod:`fsql.server.fastpath`
        (``portal.fast`` holds its rows); False: take the normal path."""
        if portal.fast is not None:
            return True
        if portal.slow or portal.rows is not None:
            return False
        portal.slow = True  # unless everything below works out
        plan = await self.server.online_plan(portal.stmt.text, self.database)
        if plan is None:
            return False
        enc = plan.encoding(portal.formats)
        if enc is None:
            return False
        try:
            rows = plan.rows(portal.params, blocking=False)
            if rows is fastpath.NOT_READY:
                rows = await self.server.run_blocking(plan.rows, portal.params, blocking=True)
        except Exception:  # the normal path reports it
            return False
        if rows is None:
            return False
        portal.fast, portal.fast_enc, portal.slow = rows, enc, False
        return True

    def send_fast(self, portal: Portal, max_rows: int, *, describe: bool) -> bool:
        """Write the rows of a fast-path portal; False: use the normal path."""
        rows, enc = portal.fast, portal.fast_enc
        assert rows is not None and enc is not None
        fields, description, encoders = enc
        remaining = len(rows) - portal.pos
        if max_rows and remaining >= max_rows:
            return False  # PortalSuspended bookkeeping: the normal path has it
        if portal.fields is None and portal.stmt.fields is not None:
            promised = [(f.name, f.oid) for f in portal.stmt.fields]
            if promised != [(f.name, f.oid) for f in fields]:
                return False  # a statement Describe promised other types: conform() them
        try:
            data = encode.data_rows_py(rows[portal.pos :], encoders)
        except (encode.Unsupported, struct.error, OverflowError, TypeError, ValueError):
            return False
        if describe:
            self.write(description)
        self.write(data)
        portal.pos = len(rows)
        portal.rows_sent += remaining
        self.write(p.command_complete(f"SELECT {portal.rows_sent}"))
        portal.done = True
        return True

    async def send_stream(
        self,
        rows: Rows,
        fields: list[encode.Field],
        limit: int = 0,
        *,
        skip: bool = False,
        conform_to: list[encode.Field] | None = None,
    ) -> int:
        """Send up to ``limit`` rows (0: all) of ``rows`` as DataRows, as the
        engine hands them out (``skip``: read past them); returns how many.
        Rows are encoded in pieces of BATCH_ROWS in the encode threads, the
        next piece (across engine batches too) while the current one is
        written; a small result is encoded here and goes out with the rest
        of the reply. An error or a cancel on the way releases the stream
        (the rows sent so far stay sent, as in PostgreSQL)."""
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[bytes] | None = None  # the piece being encoded
        n = 0
        try:
            while not limit or n < limit:
                if pending is not None and not rows.ready():
                    # the engine is still at work: what is encoded goes out first
                    self.write(await pending)
                    pending = None
                    await self.flush()
                table = await rows.take(limit - n if limit else None, self.canceled)
                if table is None:
                    break
                n += table.num_rows
                if skip:
                    continue
                if conform_to:
                    table = conform(table, conform_to)  # keep the types Describe promised
                for start in range(0, table.num_rows, BATCH_ROWS):
                    if self.canceled.is_set():
                        raise QueryCanceled(CANCELED)
                    piece = table.slice(start, BATCH_ROWS)
                    if pending is None and piece.num_rows < 512:
                        small = encode.small_data_rows(piece, fields)
                        self.write(small if small is not None else encode.data_rows(piece, fields))
                        continue
                    encoding = loop.run_in_executor(
                        self.server.encode_pool, encode.data_rows, piece, fields
                    )
                    if pending is not None:
                        self.write(await pending)
                        await self.flush()
                    pending = encoding
            if pending is not None:
                self.write(await pending)
                pending = None
                await self.flush()
        except BaseException:
            if pending is not None:
                pending.cancel()
            rows.release()
            raise
        return n

    async def send_copy(self, portal: Portal) -> None:
        rows = portal.rows
        assert rows is not None
        opts = portal.stmt.route.copy_options
        fmt = opts.get("format", "text")
        if fmt == "binary":
            rows.release()
            raise FsqlError("COPY TO STDOUT supports text and csv formats", sqlstate="0A000")
        self.write(p.copy_out_response(rows.num_columns))
        header = list(rows.schema.names) if opts.get("header") == "true" else None
        encoder = csv_rows if fmt == "csv" else encode.copy_text
        loop = asyncio.get_running_loop()
        count = 0
        try:
            while True:
                table = await rows.take(None, self.canceled)
                if table is None:
                    break
                for start in range(0, table.num_rows, BATCH_ROWS):
                    if self.canceled.is_set():
                        raise QueryCanceled(CANCELED)
                    batch = table.slice(start, BATCH_ROWS)
                    data = await loop.run_in_executor(
                        self.server.encode_pool, encoder, batch, header
                    )
                    header = None
                    if data:
                        self.write(p.copy_data(data))
                    await self.flush()
                    count += batch.num_rows
        except BaseException:
            rows.release()
            raise
        if header is not None:  # no rows: the header alone
            self.write(p.copy_data(encoder(rows.schema.empty_table(), header)))
        self.write(p.COPY_DONE)
        self.write(p.command_complete(f"COPY {count}"))


_ALREADY_SENT: list[encode.Field] = []


async def check_syntax(text: str, r: route.Route) -> None:
    """Raise the FSQL parser's error for an engine statement (a Parse message
    reports syntax errors, as PostgreSQL's does); nothing runs. The outcome
    is kept on the (per-text, cached) route."""
    if r.kind == route.ENGINE:
        query, at = text, 0
    elif r.kind in (route.DECLARE, route.COPY) and r.inner_at >= 0:
        query, at = r.inner, r.inner_at
    else:
        return
    found = r.syntax_error
    if found is None:
        error = await asyncio.to_thread(_syntax_error, query)
        if error is not None and error.position is not None:
            error.position += at
        found = r.syntax_error = error if error is not None else False
    if isinstance(found, FsqlError):
        raise FsqlError(
            found.message,
            sqlstate=found.sqlstate,
            position=found.position,
            hint=found.hint,
            detail=getattr(found, "detail", None),
        )


def _syntax_error(text: str) -> FsqlError | None:
    from fsql.sql.dialect import parse

    try:
        parse(text)
    except FsqlError as e:  # SQLSyntaxError (42601) and the parser's other refusals
        return e
    except Exception:  # a parser failure: the statement's execution reports it
        log.debug("parse at Parse failed", exc_info=True)
    return None


_STATUS_WORDS = {"insert", "create", "drop", "alter", "comment", "delete", "update", "refresh"}
_TAG = re.compile(r"[A-Z]+(?: [A-Z]+)*(?: \d+)*")


class _Skip(FsqlError):
    """The mirror already sent the ErrorResponse; skip to Sync."""


_OID_TYPES = {
    16: "boolean", 21: "smallint", 23: "integer", 20: "bigint", 700: "real",
    701: "double precision", 25: "text", 1082: "date", 1114: "timestamp", 1184: "timestamptz",
}  # fmt: skip


def conform(result: pa.Table, described: list[encode.Field]) -> pa.Table:
    """Cast columns whose type differs from what a statement Describe said."""
    if result.num_columns != len(described):
        return result
    columns = list(result.columns)
    changed = False
    for i, f in enumerate(described):
        if encode.oid_of(result.schema.field(i).type) == f.oid or f.oid not in _OID_TYPES:
            continue
        try:
            columns[i] = columns[i].cast(from_name(_OID_TYPES[f.oid]).arrow)
            changed = True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return pa.Table.from_arrays(columns, names=result.column_names) if changed else result


def csv_rows(batch: pa.Table, header: list[str] | None) -> bytes:
    return encode.copy_csv(batch, header)


_TAG_WORDS = {
    "feature",
    "group",
    "training",
    "dataset",
    "connector",
    "on",
    "demand",
    "table",
    "view",
    "metadata",
}


def command_tag(r: route.Route, text: str, result: pa.Table, rows: int | None = None) -> str:
    n = result.num_rows if rows is None else rows
    if r.first == "insert":
        count = n
        for name in ("rows", "row_count", "inserted", "count"):
            if name in result.column_names and result.num_rows == 1:
                v = result.column(name)[0].as_py()
                if isinstance(v, int):
                    count = v
        return f"INSERT 0 {count}"
    if result.num_columns:
        return f"SELECT {n}"
    w = route.words(text)
    tag = [w[0].upper()] if w else [r.first.upper()]
    for x in w[1:4]:
        if x not in _TAG_WORDS:
            break
        tag.append(x.upper())
    return " ".join(tag)


# --- parameters -------------------------------------------------------------------


def describe_value(oid: int) -> Any:
    """A stand-in for a parameter while a statement is described (run with
    LIMIT 0): a time where a time is needed (``AS OF $1`` cannot be NULL),
    else NULL."""
    now = dt.datetime.now(dt.UTC)
    if oid == 1184:
        return now
    if oid == 1114:
        return now.replace(tzinfo=None)
    if oid == 1082:
        return now.date()
    return None


def decode_param(raw: bytes | None, oid: int, fmt: int) -> Any:
    if raw is None:
        return None
    if fmt == 1:
        return _decode_binary(raw, oid)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FsqlError('invalid byte sequence for encoding "UTF8"', sqlstate="22021") from None
    if "\0" in text:
        raise FsqlError('invalid byte sequence for encoding "UTF8": 0x00', sqlstate="22021")
    try:
        if oid in (21, 23, 20, 26):
            return int(text)
        if oid in (700, 701):
            return float(text)
        if oid == 1700:
            return decimal.Decimal(text)
        if oid == 16:
            return text.strip().lower() in ("t", "true", "1", "on", "yes", "y")
        if oid == 1082:
            return dt.date.fromisoformat(text)
        if oid in (1114, 1184):
            t = text.strip()
            if len(t) > 3 and t[-3] in "+-" and t[-2:].isdigit():
                t += ":00"
            return dt.datetime.fromisoformat(t)
        if oid == 17 and text.startswith("\\x"):
            return bytes.fromhex(text[2:])
    except ValueError:
        raise FsqlError(
            f'invalid input syntax for parameter of type oid {oid}: "{text[:100]}"',
            sqlstate="22P02",
        ) from None
    return text


_PG_EPOCH = dt.datetime(2000, 1, 1)


def _decode_binary(raw: bytes, oid: int) -> Any:
    try:
        if oid == 16:
            return raw != b"\x00"
        if oid == 21:
            return struct.unpack("!h", raw)[0]
        if oid in (23, 26):
            return struct.unpack("!i", raw)[0]
        if oid == 20:
            return struct.unpack("!q", raw)[0]
        if oid == 700:
            return struct.unpack("!f", raw)[0]
        if oid == 701:
            return struct.unpack("!d", raw)[0]
        if oid == 1082:
            return dt.date(2000, 1, 1) + dt.timedelta(days=struct.unpack("!i", raw)[0])
        if oid == 1114:
            return _PG_EPOCH + dt.timedelta(microseconds=struct.unpack("!q", raw)[0])
        if oid == 1184:
            v = _PG_EPOCH + dt.timedelta(microseconds=struct.unpack("!q", raw)[0])
            return v.replace(tzinfo=dt.UTC)
        if oid == 1700:
            return _numeric_from_binary(raw)
        if oid == 17:
            return bytes(raw)
        if oid == 2950:
            return str(uuid.UUID(bytes=raw))
        if oid == 3802:
            return raw[1:].decode("utf-8")
        if oid in (0, 25, 1043, 19, 114, 705, 18, 1042):
            return raw.decode("utf-8")
    except (struct.error, UnicodeDecodeError, ValueError, OverflowError):
        raise FsqlError(
            f"incorrect binary data format in bind parameter (type oid {oid})", sqlstate="22P03"
        ) from None
    raise FsqlError(
        f"binary format for parameters of type oid {oid} is not supported", sqlstate="0A000"
    )


def _numeric_from_binary(raw: bytes) -> decimal.Decimal:
    ndigits, weight, sign, dscale = struct.unpack_from("!hhHh", raw)
    digits = struct.unpack_from(f"!{ndigits}H", raw, 8)
    if sign == 0xC000:
        return decimal.Decimal("NaN")
    value = decimal.Decimal(0)
    for i, d in enumerate(digits):
        value += decimal.Decimal(d) * (decimal.Decimal(10000) ** (weight - i))
    if sign == 0x4000:
        value = -value
    return value.quantize(decimal.Decimal(1).scaleb(-dscale)) if dscale else value


# PostgreSQL 17 renamed pg_database.daticulocale to datlocale; psql 15 and 16
# (Debian 12 ships 15) still ask for the old name in \l, which the mirror
# (PostgreSQL 18) answers with 42703. The column exists under its new name,
# so the old spelling is read as the new one.
_ICU_LOCALE = re.compile(r"\bdaticulocale\b")


def older_client_catalog_sql(text: str) -> str:
    """Catalog SQL of older psql versions, spelled for the mirror's catalogs."""
    return _ICU_LOCALE.sub("datlocale", text) if "daticulocale" in text else text
