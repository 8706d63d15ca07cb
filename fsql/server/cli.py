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
    )
    accounts = {}
    if users:
        password = os.environ.get(password_env)
        if not password:
            raise click.UsageError(f"--user needs a password in the {password_env} variable")
        accounts = {u: password for u in users}
    run(store_path, config, users=accounts)
