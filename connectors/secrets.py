"""Connector secrets: referenced, never stored.

A connector's password is given as a *reference* that is read when the
connector is used:

- ``password_env 'CRM_PASSWORD'``: the value of an environment variable;
- ``password_file '/run/secrets/crm'``: the contents of a file (trailing
  newline stripped).

The catalog keeps only the reference, so ``SHOW``/``DESCRIBE CONNECTOR``, the
catalog database and backups of the store folder never hold the value. A
plain ``password 'x'`` option is refused. Inside generated engine SQL the
secret is a query parameter (``{fsql_secret_N:String}``) whose value is set
on the engine session, so the SQL text (EXPLAIN output, engine error
details, logs) never carries it either; :func:`redact` scrubs any error text
that might echo it back from a source.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from fsql.errors import FsqlError, InvalidParameter


class SecretPolicy:
    """Which environment variables and files connector secrets may come
    from. Unrestricted by default (embedded in Python: the process owner's
    own secrets); a server narrows it to its configuration
    (``fsql serve --secret-env PREFIX --secret-dir DIR``), so a user cannot
    send the server's other variables or files to a source of their choice."""

    def __init__(self) -> None:
        self.env_prefixes: tuple[str, ...] | None = None
        self.dirs: tuple[str, ...] | None = None

    def restrict(self, env_prefixes: tuple[str, ...] = (), dirs: tuple[str, ...] = ()) -> None:
        self.env_prefixes = tuple(env_prefixes)
        self.dirs = tuple(os.path.realpath(Path(d).expanduser()) for d in dirs)

    def unrestrict(self) -> None:
        self.env_prefixes = self.dirs = None

    def check(self, connector: str, options: Mapping[str, str]) -> None:
        env = options.get("password_env")
        if env and self.env_prefixes is not None and not env.startswith(self.env_prefixes):
            raise FsqlError(
                f'connector "{connector}": password_env {env} is not allowed on this server',
                sqlstate="42501",
                hint="The server reads secrets only from environment variables named with "
                "its --secret-env prefixes"
                + (": " + ", ".join(self.env_prefixes) if self.env_prefixes else " (none)"),
            )
        file = options.get("password_file")
        if file and self.dirs is not None:
            real = os.path.realpath(Path(file).expanduser())
            if not any(real.startswith(d.rstrip(os.sep) + os.sep) for d in self.dirs):
                raise FsqlError(
                    f'connector "{connector}": password_file {file!r} is not allowed on this '
                    "server",
                    sqlstate="42501",
                    hint="The server reads secret files only under its --secret-dir folders.",
                )


# the policy of this process (a server sets it once when it starts)
POLICY = SecretPolicy()

# Options that may hold a secret value in plain text: refused.
PLAIN_SECRET_OPTIONS = ("password", "passwd", "secret", "token", "access_key", "secret_key")
# Options that reference a secret held elsewhere.
SECRET_REFERENCES = ("password_env", "password_file")


class InvalidAuthorization(FsqlError):
    """A secret cannot be read, or the source refused it."""

    sqlstate = "28000"


def check_no_plain_secrets(connector: str, options: Mapping[str, str]) -> None:
    for key in options:
        if key.lower() in PLAIN_SECRET_OPTIONS:
            raise InvalidParameter(
                f'connector "{connector}": option {key} would store a secret in plain text',
                sqlstate="28000",
                hint="Reference it instead: password_env 'ENV_VAR_NAME' or "
                "password_file '/path/to/file'.",
            )
    if "password_env" in options and "password_file" in options:
        raise InvalidParameter(
            f'connector "{connector}": give either password_env or password_file, not both'
        )
    POLICY.check(connector, options)


def resolve_password(connector: str, options: Mapping[str, str]) -> str:
    """The password the options reference ('' when none is referenced)."""
    POLICY.check(connector, options)
    env = options.get("password_env")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise InvalidAuthorization(
                f'connector "{connector}": environment variable {env} (password_env) is not set',
                hint=f"Set {env} in the environment of the process that runs fsql.",
            )
        return value
    file = options.get("password_file")
    if file:
        path = Path(file).expanduser()
        try:
            return path.read_text().rstrip("\r\n")
        except OSError as e:
            raise InvalidAuthorization(
                f'connector "{connector}": cannot read password_file {str(path)!r}: '
                f"{e.strerror or type(e).__name__}",
                hint="The file must exist and be readable by the fsql process.",
            ) from None
    return ""


def redact(text: str, *secrets: str) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def secret_param(connector_id: int) -> str:
    """The engine query-parameter name that carries a connector's secret."""
    return f"fsql_secret_{int(connector_id)}"
