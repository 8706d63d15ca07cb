"""``fsql serve``: the click command (registered on the main CLI group)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click


def _config_defaults(store_path: str) -> dict[str, Any]:
    """The ``server`` section of the store's ``fsql.json``, if any."""
    file = Path(store_path).expanduser() / "fsql.json"
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    section = data.get("server") if isinstance(data, dict) else None
    return section if isinstance(section, dict) else {}


_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 10**6, "gb": 10**9, "kib": 1 << 10,
          "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}  # fmt: skip


def parse_size(text: str | int) -> int | None:
    """``4GiB``, ``512MB``, ``1000000`` as bytes; 0 is no limit (None)."""
    raw = str(text).strip().lower().replace(" ", "")
    number = raw.rstrip("kmgtib")
    unit = raw[len(number) :]
    try:
        value = int(float(number) * _UNITS[unit])
    except (KeyError, ValueError):
        raise click.BadParameter(f"{text!r} is not a size (4GiB, 512MiB, bytes)") from None
    return value or None


@click.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option(
    "--port", type=int, default=None, help="Port (default 5433; never PostgreSQL's standard port)."
)
@click.option(
    "--auth",
    type=click.Choice(["scram-sha-256", "trust"]),
    default=None,
    help="Client authentication (default scram-sha-256; trust is for local development).",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="TLS certificate (PEM). With it, plaintext connections are refused.",
)
@click.option(
    "--tls-key", type=click.Path(exists=True, dir_okay=False), default=None, help="TLS key (PEM)."
)
@click.option(
    "--require-tls",
    is_flag=True,
    default=None,
    help="Refuse to start without --tls-cert/--tls-key; every connection must use TLS.",
)
@click.option(
    "--allow-plaintext",
    is_flag=True,
    default=None,
    help="With TLS configured, still accept connections without TLS.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=None,
    help="Most client connections open at once (default 100); more get FATAL 53300.",
)
@click.option(
    "--max-startup",
    type=click.IntRange(min=1),
    default=None,
    help="Most connections still authenticating at once (default 32); more get FATAL 53300.",
)
@click.option(
    "--auth-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="A connection that has not logged in after this long is closed (default 60).",
)
@click.option(
    "--allow-read",
    multiple=True,
    metavar="DIR",
    help="A folder whose files statements may read (read_parquet, files connectors); "
    "repeatable; none by default.",
)
@click.option(
    "--allow-write",
    multiple=True,
    metavar="DIR",
    help="A folder training datasets may be written to, beside the store; repeatable.",
)
@click.option(
    "--allow-endpoint",
    multiple=True,
    metavar="HOST[:PORT]",
    help="A remote host statements may reach (object stores, files connectors' URLs); "
    "repeatable; none by default.",
)
@click.option(
    "--secret-env",
    multiple=True,
    metavar="PREFIX",
    help="Connector secrets may come from environment variables with this prefix; "
    "repeatable; none by default.",
)
@click.option(
    "--secret-dir",
    multiple=True,
    metavar="DIR",
    help="Connector secrets may come from files in this folder; repeatable; none by default.",
)
@click.option(
    "--query-memory-limit",
    default=None,
    metavar="SIZE",
    help="Engine memory one query may use (4GiB, 512MiB, bytes; 0: no limit; default 4GiB); "
    "a query over it fails with 53200.",
)
@click.option(
    "--mirror-url",
    default=None,
    metavar="URL",
    help="PostgreSQL for the catalog mirror (default: a private embedded instance).",
)
@click.option(
    "--user",
    "users",
    multiple=True,
    metavar="NAME",
    help="Create or update a server user; its password is read from --password-env.",
)
@click.option(
    "--password-env",
    default="FSQL_SERVER_PASSWORD",
    show_default=True,
    metavar="VAR",
    help="Environment variable holding the password for --user.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    auth: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    require_tls: bool | None,
    allow_plaintext: bool | None,
    max_connections: int | None,
    max_startup: int | None,
    auth_timeout: float | None,
    allow_read: tuple[str, ...],
    allow_write: tuple[str, ...],
    allow_endpoint: tuple[str, ...],
    secret_env: tuple[str, ...],
    secret_dir: tuple[str, ...],
    query_memory_limit: str | None,
    mirror_url: str | None,
    users: tuple[str, ...],
    password_env: str,
) -> None:
    """Serve the store over the PostgreSQL protocol (psql, JDBC, BI tools)."""
    from fsql.server.server import ServerConfig, run

    store_path = getattr(ctx.obj, "store_path", None) or os.environ.get(
        "FSQL_STORE", "./fsql-store"
    )
    conf = _config_defaults(store_path)
    config = ServerConfig(
        host=host or conf.get("host", "127.0.0.1"),
        port=port if port is not None else int(conf.get("port", 5433)),
        auth=auth or conf.get("auth", "scram-sha-256"),
        tls_cert=tls_cert or conf.get("tls_cert"),
        tls_key=tls_key or conf.get("tls_key"),
        require_tls=bool(require_tls if require_tls is not None else conf.get("require_tls")),
        allow_plaintext=bool(
            allow_plaintext if allow_plaintext is not None else conf.get("allow_plaintext")
        ),
        max_connections=int(
            max_connections if max_connections is not None else conf.get("max_connections", 100)
        ),
        max_startup=int(max_startup if max_startup is not None else conf.get("max_startup", 32)),
        auth_timeout=float(
            auth_timeout if auth_timeout is not None else conf.get("auth_timeout", 60.0)
        ),
        mirror_url=mirror_url or conf.get("mirror_url"),
        allow_read=tuple(allow_read or conf.get("allow_read", ())),
        allow_write=tuple(allow_write or conf.get("allow_write", ())),
        allow_endpoint=tuple(allow_endpoint or conf.get("allow_endpoint", ())),
        secret_env=tuple(secret_env or conf.get("secret_env", ())),
        secret_dir=tuple(secret_dir or conf.get("secret_dir", ())),
        query_memory_limit=parse_size(query_memory_limit or conf.get("query_memory_limit", "4GiB")),
    )
    accounts = {}
    if users:
        password = os.environ.get(password_env)
        if not password:
            raise click.UsageError(f"--user needs a password in the {password_env} variable")
        accounts = {u: password for u in users}
    run(store_path, config, users=accounts)
