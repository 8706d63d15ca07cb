"""``fsql serve``: the asyncio Postgres-wire server.

One process owns the store (chDB serves one folder per process). The event
loop only moves bytes: engine calls run in a thread pool, result encoding in
another, in bounded batches, so a long query on one connection never stalls
the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import itertools
import logging
import os
import signal
import ssl
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

import fsql
from fsql.connectors import secrets
from fsql.connectors.engine import CancelScope, cancellable
from fsql.errors import FsqlError, InvalidParameter
from fsql.params import bind
from fsql.server import auth, fastpath
from fsql.server.mirror import Mirror
from fsql.server.protocol import POSTGRESQL_PORT
from fsql.server.results import STREAM_ROWS, StreamRows, open_batches
from fsql.server.session import Session
from fsql.statements.run import run_statement
from fsql.store.core import StoreCore

log = logging.getLogger("fsql.server")

DEFAULT_PORT = 5433
# how long a cancel waits for the engine call it stopped to return
CANCEL_WAIT = 5.0
# at most one warning about refused connections per this many seconds
REFUSAL_LOG_INTERVAL = 10.0


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    auth: str = "scram-sha-256"  # or "trust" (local development only)
    tls_cert: str | None = None
    tls_key: str | None = None
    # with TLS configured, plaintext connections are refused unless allowed;
    # require_tls makes a server without a certificate a configuration error
    require_tls: bool = False
    allow_plaintext: bool = False
    mirror_url: str | None = None  # a PostgreSQL for the catalog mirror; default: embedded
    engine_threads: int = 4
    encode_threads: int = 2
    max_connections: int = 100  # open client connections, authenticating ones included
    max_startup: int = 32  # connections still authenticating
    auth_timeout: float = 60.0  # seconds from connect to a finished login
    # what statements may reach (docs/SECURITY.md): files under these
    # folders, training datasets under the store and these, these remote
    # hosts, secrets from these variable prefixes and folders
    allow_read: tuple[str, ...] = ()
    allow_write: tuple[str, ...] = ()
    allow_endpoint: tuple[str, ...] = ()
    secret_env: tuple[str, ...] = ()
    secret_dir: tuple[str, ...] = ()
    query_memory_limit: int | None = 4 << 30  # bytes per query; None: no limit

    def __post_init__(self) -> None:
        if self.port == POSTGRESQL_PORT:
            raise InvalidParameter(
                f"fsql serve does not use port {POSTGRESQL_PORT} (a real PostgreSQL may be there)",
                hint="Use the default 5433 or another free port.",
            )
        if self.auth not in ("scram-sha-256", "trust"):
            raise InvalidParameter(
                f"unknown authentication method {self.auth!r}",
                hint="Use 'scram-sha-256' (default) or 'trust'.",
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise InvalidParameter("TLS needs both a certificate and a key file")
        if self.require_tls and not self.tls_cert:
            raise InvalidParameter(
                "--require-tls needs a certificate", hint="Give --tls-cert and --tls-key."
            )
        if self.require_tls and self.allow_plaintext:
            raise InvalidParameter("--require-tls and --allow-plaintext contradict each other")
        for name in ("max_connections", "max_startup"):
            if int(getattr(self, name)) < 1:
                raise InvalidParameter(f"{name} must be at least 1")
        if not self.auth_timeout > 0:
            raise InvalidParameter("auth_timeout must be a positive number of seconds")

    @property
    def plaintext_allowed(self) -> bool:
        """Whether a connection without TLS may log in: always without a
        certificate, with one only when --allow-plaintext says so."""
        return not self.tls_cert or (self.allow_plaintext and not self.require_tls)


def confine(store: StoreCore, config: ServerConfig) -> None:
    """Narrow what the store may reach to the server's configuration: a
    logged-in user reads only the folders, hosts and secrets it names."""
    store.read_roots = [str(Path(d).expanduser().resolve()) for d in config.allow_read]
    store.write_roots = [str(Path(d).expanduser().resolve()) for d in config.allow_write]
    store.endpoints = list(config.allow_endpoint)
    store.query_memory_limit = config.query_memory_limit
    secrets.POLICY.restrict(tuple(config.secret_env), tuple(config.secret_dir))


class Server:
    def __init__(self, store: fsql.Store, config: ServerConfig) -> None:
        self.store = store
        self.config = config
        self.auth = "trust" if config.auth == "trust" else "scram"
        self.ssl_context: ssl.SSLContext | None = None
        # the tls-server-end-point channel binding data of the certificate
        # (SCRAM-SHA-256-PLUS); None without TLS or for a certificate whose
        # signature has no hash of its own (Ed25519, Ed448)
        self.tls_end_point: bytes | None = None
        if config.tls_cert and config.tls_key:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(config.tls_cert, config.tls_key)
            self.ssl_context = ctx
            self.tls_end_point = auth.server_end_point(config.tls_cert)
            if self.tls_end_point is None:
                log.warning(
                    "the TLS certificate's signature algorithm has no hash function:"
                    " SCRAM-SHA-256-PLUS (channel binding) is not offered"
                )
        self.plaintext_allowed = config.plaintext_allowed
        confine(store, config)
        # admission: open connections, and those of them not yet logged in
        self.connections = 0
        self.starting = 0
        self.refusing = 0  # connections being told "too many connections"
        self._refused = 0
        self._refusal_logged = 0.0
        self.mirror = Mirror(store.path, config.mirror_url)
        self.engine_pool = ThreadPoolExecutor(
            config.engine_threads, thread_name_prefix="fsql-engine"
        )
        self.encode_pool = ThreadPoolExecutor(
            config.encode_threads, thread_name_prefix="fsql-encode"
        )
        self.sessions: dict[int, Session] = {}
        self._pids = itertools.count(os.getpid() * 1000 % 2_000_000_000 + 1)
        self._param_cache: dict[tuple[str, str], list[int] | None] = {}
        # statement text -> (online service generation, its online-lookup plan or None)
        self._online_plans: dict[str, tuple[int, fastpath.OnlineLookup | None]] = {}
        self._server: asyncio.Server | None = None
        self._store_lock = threading.Lock()

    # lifecycle --------------------------------------------------------------

    def prepare(self) -> None:
        """Start the mirror and bring it up to date with the catalog."""
        self.mirror.start()
        self.mirror.sync(self.store.catalog, force=True)
        if self.auth == "scram":  # the users' mirror roles (see Mirror.role_for)
            self.mirror.ensure_roles(auth.users(self.store.catalog))
        hooks = getattr(self.store, "on_catalog_change", None)
        if isinstance(hooks, list):
            hooks.append(lambda *_: self.mirror.sync(self.store.catalog))

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.config.host, self.config.port, limit=2**20, reuse_address=True
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        if hasattr(transport, "set_write_buffer_limits"):
            transport.set_write_buffer_limits(high=4 * 2**20)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                import socket

                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        refusal = self._admission()
        if refusal is not None:
            await self._refuse(refusal, reader, writer)
            return
        self.connections += 1
        self.starting += 1
        session = Session(self, reader, writer)
        try:
            await session.serve()
        finally:
            self.connections -= 1
            if not session.authenticated:
                self.starting -= 1

    def _admission(self) -> FsqlError | None:
        """None when a new connection may proceed, else the FATAL it gets."""
        cfg = self.config
        if self.connections >= cfg.max_connections:
            return FsqlError(
                f"sorry, too many connections already (max_connections is {cfg.max_connections})",
                sqlstate="53300",
                hint="Try again later, or raise fsql serve --max-connections.",
            )
        if self.starting >= cfg.max_startup:
            return FsqlError(
                f"sorry, too many connections are still authenticating"
                f" (max_startup is {cfg.max_startup})",
                sqlstate="53300",
                hint="Try again later, or raise fsql serve --max-startup.",
            )
        return None

    async def _refuse(
        self, refusal: FsqlError, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answer an over-the-limit connection with its FATAL 53300 after its
        startup packet, as PostgreSQL does (a CancelRequest is still served);
        when even the refusals in progress are at the limit, just close it."""
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged >= REFUSAL_LOG_INTERVAL:
            log.warning("%s (%d connection(s) refused)", refusal.message, self._refused)
            self._refusal_logged, self._refused = now, 0
        if self.refusing >= self.config.max_startup:
            writer.transport.abort()
            return
        self.refusing += 1
        try:
            await Session(self, reader, writer, refusal=refusal).serve()
        finally:
            self.refusing -= 1

    def authenticated(self, session: Session) -> None:
        """``session`` has logged in: it no longer counts as authenticating."""
        if not session.authenticated:
            session.authenticated = True
            self.starting -= 1

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for s in list(self.sessions.values()):
                try:
                    s.writer.close()
                except Exception:
                    pass
            await self._server.wait_closed()
        self.engine_pool.shutdown(wait=False, cancel_futures=True)
        self.encode_pool.shutdown(wait=False, cancel_futures=True)
        self.mirror.stop()

    # sessions -----------------------------------------------------------------

    def next_pid(self) -> int:
        return next(self._pids)

    def register(self, session: Session) -> None:
        self.sessions[session.pid] = session

    def unregister(self, session: Session) -> None:
        if self.sessions.get(session.pid) is session:
            del self.sessions[session.pid]

    async def cancel(self, pid: int, secret: int) -> None:
        session = self.sessions.get(pid)
        if session is None or session.secret != secret:
            return
        session.canceled.set()
        b = session.backend
        if b is not None and session.busy_mirror and self.mirror.target is not None:
            target = self.mirror.target
            try:
                if target.unix_path:
                    _, w = await asyncio.open_unix_connection(target.unix_path)
                else:
                    _, w = await asyncio.open_connection(target.host, target.port)
                import struct

                w.write(struct.pack("!ii", 16, 80877102) + struct.pack("!i", b.pid) + b.secret[:4])
                await w.drain()
                w.close()
            except OSError:
                pass

    def parameter_status(self, session: Session) -> dict[str, str]:
        return {
            "server_version": f"{self.mirror.server_version} (fsql {fsql.__version__})",
            "server_encoding": "UTF8",
            "client_encoding": "UTF8",
            "DateStyle": "ISO, MDY",
            "IntervalStyle": "postgres",
            "TimeZone": "UTC",
            "integer_datetimes": "on",
            "standard_conforming_strings": "on",
            "is_superuser": "off",
            "session_authorization": session.user,
            "application_name": session.app,
            "default_transaction_read_only": "off",
            "in_hot_standby": "off",
            "search_path": "public",
        }

    def lookup_user(self, user: str) -> auth.Verifier | None:
        return auth.lookup(self.store.catalog, user)

    # engine and mirror calls (blocking work in threads) ------------------------

    async def run_sql(
        self, text: str, params: Sequence[Any], project: str, scope: CancelScope | None = None
    ) -> pa.Table:
        """Run a statement in an engine thread. With a ``scope``, a cancel
        while it runs goes through :meth:`stop`."""
        future = self.engine_pool.submit(self._run_sql, text, list(params), project, scope)
        return await self._engine_call(future, scope)  # type: ignore[no-any-return]

    async def open_rows(
        self, text: str, params: Sequence[Any], project: str, scope: CancelScope
    ) -> StreamRows:
        """Start a statement whose result streams (:mod:`fsql.server.results`):
        its first batch is read here, a small result completely. ``scope``
        stays with the stream, so a cancel stops it while it is read."""
        future = self.engine_pool.submit(self._open_rows, text, list(params), project, scope)
        reader, schema, batches = await self._engine_call(future, scope)
        return StreamRows(self, self.engine_pool, reader, schema, batches, scope)

    async def _engine_call(
        self, future: concurrent.futures.Future[Any], scope: CancelScope | None
    ) -> Any:
        """Await an engine thread's call; a cancel while it runs goes through
        :meth:`stop`."""
        waiter = asyncio.wrap_future(future)
        try:
            return await asyncio.shield(waiter)
        except asyncio.CancelledError:
            if scope is not None:
                await self.stop(scope, future, waiter)
            raise

    async def stop(
        self, scope: CancelScope, future: concurrent.futures.Future[Any], waiter: Any
    ) -> None:
        """Stop the engine work of ``scope``: a call still queued never starts;
        the engine statements of a running one are killed, and it is waited
        for (at most CANCEL_WAIT seconds), so the connection's next statement
        does not run beside it."""
        if future.cancel():
            return
        stopper = asyncio.ensure_future(asyncio.to_thread(scope.cancel, CANCEL_WAIT))
        done, _ = await asyncio.wait({waiter}, timeout=CANCEL_WAIT)
        if waiter in done and not waiter.cancelled():
            waiter.exception()  # retrieved: the statement's error is the cancel
        elif not done:
            log.warning("a canceled engine call is still running after %ss", CANCEL_WAIT)
            waiter.add_done_callback(lambda w: w.cancelled() or w.exception())
        await stopper

    def _run_sql(
        self, text: str, params: list[Any], project: str, scope: CancelScope | None = None
    ) -> pa.Table:
        try:
            with cancellable(scope):
                return self.store.for_project(project).sql(text, params or None)  # type: ignore[attr-defined]
        except FsqlError:
            raise  # engine errors carry their SQLSTATE (fsql.errors.clickhouse_sqlstate)
        except Exception as e:  # an engine or library failure: still an SQLSTATE
            raise FsqlError(f"{type(e).__name__}: {e}", sqlstate="XX000") from None

    def _open_rows(
        self, text: str, params: list[Any], project: str, scope: CancelScope
    ) -> tuple[pa.RecordBatchReader | None, pa.Schema, list[pa.RecordBatch]]:
        try:
            with cancellable(scope):
                store = self.store.for_project(project)
                reader = store.sql_stream(text, params or None, batch_rows=STREAM_ROWS)  # type: ignore[attr-defined]
                batches, ended = open_batches(reader)
        except FsqlError:
            raise
        except Exception as e:  # an engine or library failure: still an SQLSTATE
            raise FsqlError(f"{type(e).__name__}: {e}", sqlstate="XX000") from None
        return (None if ended else reader), reader.schema, batches

    async def run_blocking(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in an engine thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.engine_pool, functools.partial(fn, *args, **kwargs))

    async def online_plan(self, text: str, project: str) -> fastpath.OnlineLookup | None:
        """The online-lookup plan of ``text`` (see :mod:`fsql.server.fastpath`),
        built once per generation of the online service's plans. Plans are
        cached by text for the store's own project; sessions of other
        projects take the normal path."""
        if getattr(type(self.store), "online", None) is None or project != self.store.project:
            return None
        service = self.store.online
        entry = self._online_plans.get(text)
        if entry is not None and entry[0] == service.generation:
            return entry[1]
        if "FEATURES" not in text.upper():
            return None
        generation = service.generation
        plan = await self.run_blocking(fastpath.build, self.store, text)
        if len(self._online_plans) > 4096:
            self._online_plans.clear()
        self._online_plans[text] = (plan.generation if plan else generation, plan)
        return plan

    async def schema_of(self, text: str, params: Sequence[Any], project: str) -> pa.Table:
        """A result with the statement's columns (ideally no rows)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.engine_pool, self._schema_of, text, list(params), project
        )

    def _schema_of(self, text: str, params: list[Any], project: str) -> pa.Table:
        try:
            from sqlglot import exp

            from fsql.sql.dialect import FSQL, parse
            from fsql.sql.nodes import SelectFeatures

            statements = parse(text)
            if len(statements) == 1 and isinstance(statements[0], exp.Query):
                wrapped = (
                    exp.select(exp.Star())
                    .from_(statements[0].subquery("_fsql_describe"))
                    .limit(0)
                    .sql(dialect=FSQL)
                )
                return self._run_sql(wrapped, params, project)
            if len(statements) == 1 and isinstance(statements[0], SelectFeatures):
                # the same statement with LIMIT 0: planned and run, no rows read
                probe = statements[0].copy()
                probe.set("limit", exp.Limit(expression=exp.Literal.number(0)))
                probe.set("offset", None)
                return self._run_tree(probe, params, project)
        except FsqlError:
            pass
        return self._run_sql(text, params, project)

    def _run_tree(self, statement: Any, params: list[Any], project: str) -> pa.Table:
        """A parsed statement with its parameters bound as literal nodes."""
        store = self.store.for_project(project)
        try:
            return run_statement(store, bind(statement, params) if params else statement)
        except FsqlError:
            raise
        except Exception as e:
            raise FsqlError(f"{type(e).__name__}: {e}", sqlstate="XX000") from None

    async def describe_params(self, project: str, text: str) -> list[int] | None:
        """Types of untyped parameters: PostgreSQL's inference over the mirror,
        else (FSQL statements) the type of the feature each one is compared with."""
        key = (project, text)
        if key not in self._param_cache:
            if len(self._param_cache) > 4096:
                self._param_cache.clear()
            oids = await asyncio.to_thread(self.mirror.describe_params, project, text)
            if oids is None:
                oids = await asyncio.to_thread(self._infer_param_types, text, project)
            self._param_cache[key] = oids
        return self._param_cache[key]

    def _infer_param_types(self, text: str, project: str) -> list[int] | None:
        from sqlglot import exp

        from fsql.sql.dialect import parse
        from fsql.sql.nodes import SelectFeatures

        try:
            statements = parse(text)
            groups = self.store.for_project(project).feature_groups()
            features = {f.name: f.ftype.pg_oid for fg in groups for f in fg.features}
        except Exception:
            return None
        found: dict[int, int] = {}
        for statement in statements:
            for node in statement.find_all(exp.Parameter, exp.Placeholder):
                ref = node.this
                index = ref.this if isinstance(ref, exp.Literal) else ref
                if not str(index).isdigit():
                    continue
                child, parent = node, node.parent
                while isinstance(parent, exp.Paren | exp.Tuple):
                    child, parent = parent, parent.parent
                if isinstance(parent, SelectFeatures) and child.arg_key == "as_of":
                    found[int(str(index))] = self._as_of_oid(parent, groups)
                    continue
                if (
                    isinstance(parent, SelectFeatures) and child.arg_key == "system_time"
                ) or isinstance(parent, exp.Version):
                    found[int(str(index))] = 1184  # a system (commit) time is an instant
                    continue
                other: object = None
                if isinstance(parent, exp.Binary):
                    other = parent.left if parent.right is node else parent.right
                elif isinstance(parent, exp.In):
                    other = parent.this
                elif isinstance(parent, exp.Limit | exp.Offset):
                    found[int(str(index))] = 20
                    continue
                if isinstance(other, exp.Column) and other.name in features:
                    found[int(str(index))] = features[other.name]
        if not found:
            return None
        return [found.get(i, 0) for i in range(1, max(found) + 1)]

    def _as_of_oid(self, node: Any, every: list[Any]) -> int:
        """The type of ``AS OF $n`` in a SELECT FEATURES: that of the event
        time of the feature groups it names (timestamptz when any has one, else
        timestamp, which fsql reads as UTC)."""
        from sqlglot import exp

        names = {c.name for e in node.expressions for c in e.find_all(exp.Column)}
        groups = [fg for fg in every if fg.event_time]
        named = [fg for fg in groups if names & {f.name for f in fg.features}] or groups
        types = {f.ftype.pg_oid for fg in named for f in fg.features if f.name == fg.event_time}
        return 1184 if 1184 in types else 1114

    async def catalog_changed(self) -> None:
        try:
            changed = await asyncio.to_thread(self.mirror.sync, self.store.catalog)
        except Exception:
            log.exception("catalog mirror sync failed")
            return
        if changed:
            self._param_cache.clear()


def run(
    store_path: str | Path,
    config: ServerConfig,
    *,
    ready: threading.Event | None = None,
    users: dict[str, str] | None = None,
) -> None:
    """Open the store, serve until SIGINT/SIGTERM, close everything."""
    logging.basicConfig(level=os.environ.get("FSQL_LOG_LEVEL", "INFO"), format="%(message)s")
    store = fsql.connect(store_path)
    server = Server(store, config)
    try:
        for user, password in (users or {}).items():
            auth.set_password(store.catalog, user, password)
        server.prepare()
        asyncio.run(_serve(server, ready))
    finally:
        server.mirror.stop()
        store.close()


async def _serve(server: Server, ready: threading.Event | None) -> None:
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    if server.ssl_context is None:
        tls = "no TLS"
    elif server.plaintext_allowed:
        tls = "TLS available, plaintext allowed"
    else:
        tls = "TLS required"
    print(
        f"fsql serving {server.store.path} on {server.config.host}:{server.port} "
        f"(auth {server.config.auth}, {tls}, max_connections {server.config.max_connections})",
        flush=True,
    )
    if ready is not None:
        ready.set()
    await stop.wait()
    await server.close()
