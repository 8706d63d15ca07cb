"""SCRAM-SHA-256 (RFC 5802/7677) for the Postgres-wire server.

Users live in the catalog table ``server_users`` as SCRAM verifiers in
PostgreSQL's own format, so a password is never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update

from fsql.catalog import Catalog
from fsql.catalog import models as m
from fsql.errors import FsqlError, InvalidParameter

ITERATIONS = 4096
MECHANISM = "SCRAM-SHA-256"


class AuthFailed(FsqlError):
    sqlstate = "28P01"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def make_verifier(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = _hmac(salted, b"Client Key")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = _hmac(salted, b"Server Key")
    return f"{MECHANISM}${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


@dataclass(frozen=True)
class Verifier:
    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    @classmethod
    def parse(cls, text: str) -> Verifier:
        mech, rest, keys = text.split("$")
        if mech != MECHANISM:
            raise ValueError("not a SCRAM-SHA-256 verifier")
        iterations, salt = rest.split(":")
        stored, server = keys.split(":")
        return cls(
            int(iterations),
            base64.b64decode(salt),
            base64.b64decode(stored),
            base64.b64decode(server),
        )

    @classmethod
    def dummy(cls, user: str) -> Verifier:
        """A verifier no password matches, so an unknown user looks like a wrong password."""
        salt = hashlib.sha256(b"fsql-unknown-user:" + user.encode()).digest()[:16]
        return cls(ITERATIONS, salt, secrets.token_bytes(32), secrets.token_bytes(32))


# --- users in the catalog -------------------------------------------------


def set_password(catalog: Catalog, user: str, password: str) -> None:
    """Create ``user`` or change its password."""
    if not user or not password:
        raise InvalidParameter("a server user needs a name and a non-empty password")
    verifier = make_verifier(password)
    t = m.server_users
    with catalog.engine.begin() as conn:
        exists = conn.execute(select(t.c.name).where(t.c.name == user)).scalar()
        if exists is None:
            conn.execute(
                insert(t).values(
                    name=user, scram_verifier=verifier, created_at_us=time.time_ns() // 1000
                )
            )
        else:
            conn.execute(update(t).where(t.c.name == user).values(scram_verifier=verifier))


def drop_user(catalog: Catalog, user: str) -> None:
    with catalog.engine.begin() as conn:
        conn.execute(delete(m.server_users).where(m.server_users.c.name == user))


def users(catalog: Catalog) -> list[str]:
    with catalog.engine.connect() as conn:
        return list(
            conn.execute(select(m.server_users.c.name).order_by(m.server_users.c.name)).scalars()
        )


def lookup(catalog: Catalog, user: str) -> Verifier | None:
    with catalog.engine.connect() as conn:
        text = conn.execute(
            select(m.server_users.c.scram_verifier).where(m.server_users.c.name == user)
        ).scalar()
    return Verifier.parse(text) if text else None


# --- the server side of one exchange --------------------------------------


class ScramServer:
    """Drives one SCRAM-SHA-256 exchange; raises :class:`AuthFailed`."""

    def __init__(self, user: str, verifier: Verifier | None) -> None:
        self.user = user
        self.known = verifier is not None
        self.verifier = verifier or Verifier.dummy(user)
        self.nonce = ""
        self.client_first_bare = ""
        self.server_first = ""

    def first(self, client_first: bytes) -> bytes:
        try:
            text = client_first.decode("utf-8")
            gs2_cb, _authzid, bare = text.split(",", 2)
        except (UnicodeDecodeError, ValueError):
            raise AuthFailed("malformed SCRAM message", sqlstate="08P01") from None
        if gs2_cb not in ("n", "y"):
            raise AuthFailed("channel binding is not supported", sqlstate="08P01")
        attrs = dict(a.split("=", 1) for a in bare.split(",") if "=" in a)
        cnonce = attrs.get("r", "")
        if not cnonce:
            raise AuthFailed("malformed SCRAM message: no nonce", sqlstate="08P01")
        self.gs2 = text[: len(text) - len(bare)]
        self.client_first_bare = bare
        self.nonce = cnonce + _b64(secrets.token_bytes(18))
        v = self.verifier
        self.server_first = f"r={self.nonce},s={_b64(v.salt)},i={v.iterations}"
        return self.server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        try:
            text = client_final.decode("utf-8")
            without_proof, proof_attr = text.rsplit(",p=", 1)
            attrs = dict(a.split("=", 1) for a in without_proof.split(",") if "=" in a)
            proof = base64.b64decode(proof_attr, validate=True)
        except (UnicodeDecodeError, ValueError):
            raise AuthFailed("malformed SCRAM message", sqlstate="08P01") from None
        if attrs.get("r") != self.nonce:
            raise AuthFailed("SCRAM nonce mismatch", sqlstate="08P01")
        if attrs.get("c") != _b64(self.gs2.encode()):
            raise AuthFailed("SCRAM channel binding mismatch", sqlstate="08P01")
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        v = self.verifier
        signature = _hmac(v.stored_key, auth_message)
        if len(proof) != len(signature):
            raise self._failed()
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not (
            self.known and hmac.compare_digest(hashlib.sha256(client_key).digest(), v.stored_key)
        ):
            raise self._failed()
        return f"v={_b64(_hmac(v.server_key, auth_message))}".encode()

    def _failed(self) -> AuthFailed:
        return AuthFailed(f'password authentication failed for user "{self.user}"')


def client_scram(password: str) -> ScramClient:
    return ScramClient(password)


class ScramClient:
    """The client side, used to log into a configured mirror PostgreSQL."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.cnonce = _b64(secrets.token_bytes(18))
        self.first_bare = f"n=,r={self.cnonce}"

    def first(self) -> bytes:
        return ("n,," + self.first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = dict(a.split("=", 1) for a in text.split(","))
        salted = hashlib.pbkdf2_hmac(
            "sha256", self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
        )
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{self.first_bare},{text},{without_proof}".encode()
        signature = _hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        return f"{without_proof},p={_b64(proof)}".encode()
