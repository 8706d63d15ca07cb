"""SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802/7677, channel binding
``tls-server-end-point`` of RFC 5929) for the Postgres-wire server.

Users live in the catalog table ``server_users`` as SCRAM verifiers in
PostgreSQL's own format, so a password is never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import ssl
import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update

from fsql.catalog import Catalog
from fsql.catalog import models as m
from fsql.errors import FsqlError, InvalidParameter

ITERATIONS = 4096
MECHANISM = "SCRAM-SHA-256"
MECHANISM_PLUS = "SCRAM-SHA-256-PLUS"
CHANNEL_BINDING = "tls-server-end-point"


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


# --- channel binding: tls-server-end-point (RFC 5929 section 4.1) ----------

# signature algorithm OID -> the hash it signs with
_SIGNATURE_HASHES = {
    "1.2.840.113549.1.1.4": "md5",  # md5WithRSAEncryption
    "1.2.840.113549.1.1.5": "sha1",  # sha1WithRSAEncryption
    "1.3.14.3.2.29": "sha1",  # sha1WithRSASignature (OIW)
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
    "1.2.840.113549.1.1.14": "sha224",
    "1.2.840.10045.4.1": "sha1",  # ecdsa-with-SHA1
    "1.2.840.10045.4.3.1": "sha224",
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
    "1.2.840.10040.4.3": "sha1",  # dsa-with-sha1
    "2.16.840.1.101.3.4.3.1": "sha224",  # dsa-with-sha224
    "2.16.840.1.101.3.4.3.2": "sha256",  # dsa-with-sha256
    "2.16.840.1.101.3.4.3.9": "sha3_224",  # ecdsa-with-SHA3-*
    "2.16.840.1.101.3.4.3.10": "sha3_256",
    "2.16.840.1.101.3.4.3.11": "sha3_384",
    "2.16.840.1.101.3.4.3.12": "sha3_512",
    "2.16.840.1.101.3.4.3.13": "sha3_224",  # RSA PKCS #1 v1.5 with SHA3-*
    "2.16.840.1.101.3.4.3.14": "sha3_256",
    "2.16.840.1.101.3.4.3.15": "sha3_384",
    "2.16.840.1.101.3.4.3.16": "sha3_512",
}
_RSASSA_PSS = "1.2.840.113549.1.1.10"
# hash algorithm OID -> hashlib name (the hash inside RSASSA-PSS parameters)
_HASHES = {
    "1.3.14.3.2.26": "sha1",
    "1.2.840.113549.2.5": "md5",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.7": "sha3_224",
    "2.16.840.1.101.3.4.2.8": "sha3_256",
    "2.16.840.1.101.3.4.2.9": "sha3_384",
    "2.16.840.1.101.3.4.2.10": "sha3_512",
}


def _der(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, first content byte, end) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, n = data[pos], data[pos + 1]
    start = pos + 2
    if n & 0x80:
        width = n & 0x7F
        if width == 0 or width > 4 or start + width > len(data):
            raise ValueError("bad DER length")
        n = int.from_bytes(data[start : start + width], "big")
        start += width
    if start + n > len(data):
        raise ValueError("truncated DER")
    return tag, start, start + n


def _oid(raw: bytes) -> str:
    parts: list[int] = []
    value = 0
    for b in raw:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    if not parts:
        raise ValueError("empty OID")
    first = min(parts[0] // 40, 2)
    return ".".join(str(x) for x in [first, parts[0] - 40 * first, *parts[1:]])


def _algorithm(data: bytes, pos: int) -> tuple[str, int, int]:
    """The OID of the AlgorithmIdentifier at ``pos``, and where its parameters lie."""
    tag, start, end = _der(data, pos)
    if tag != 0x30:
        raise ValueError("AlgorithmIdentifier is not a SEQUENCE")
    tag, ostart, oend = _der(data, start)
    if tag != 0x06:
        raise ValueError("AlgorithmIdentifier without an OID")
    return _oid(data[ostart:oend]), oend, end


def signature_hash(der: bytes) -> str | None:
    """The hashlib name of the hash the certificate's signature uses, or None
    when it has none (Ed25519, Ed448) or is unknown."""
    tag, start, _ = _der(der, 0)  # Certificate
    if tag != 0x30:
        raise ValueError("not a certificate")
    _, _, tbs_end = _der(der, start)  # TBSCertificate
    oid, params, params_end = _algorithm(der, tbs_end)  # signatureAlgorithm
    if oid != _RSASSA_PSS:
        return _SIGNATURE_HASHES.get(oid)
    # RSASSA-PSS-params: SEQUENCE { [0] hashAlgorithm DEFAULT sha1, ... }
    if params >= params_end:
        return "sha1"
    tag, start, end = _der(der, params)
    if tag != 0x30:
        return None
    if start < end and der[start] == 0xA0:
        _, inner, _ = _der(der, start)
        return _HASHES.get(_algorithm(der, inner)[0])
    return "sha1"


def certificate_hash(der: bytes) -> bytes | None:
    """The ``tls-server-end-point`` channel binding data of a DER certificate:
    its hash under the hash function of its signature algorithm, SHA-256 when
    that is MD5 or SHA-1 (RFC 5929 section 4.1); None when the signature has
    no hash function of its own (no channel binding is possible then, as in
    PostgreSQL)."""
    name = signature_hash(der)
    if name is None:
        return None
    if name in ("md5", "sha1"):
        name = "sha256"
    return hashlib.new(name, der).digest()


def server_end_point(cert_file: str) -> bytes | None:
    """:func:`certificate_hash` of the server certificate, the first one in
    ``cert_file`` (PEM, as ``SSLContext.load_cert_chain`` reads it)."""
    with open(cert_file, encoding="ascii", errors="replace") as f:
        text = f.read()
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    i = text.find(begin)
    j = text.find(end, i)
    if i < 0 or j < 0:
        raise ValueError(f"no PEM certificate in {cert_file}")
    try:
        return certificate_hash(ssl.PEM_cert_to_DER_cert(text[i : j + len(end)]))
    except ValueError:
        return None


# --- the server side of one exchange --------------------------------------


class ScramServer:
    """Drives one SCRAM-SHA-256(-PLUS) exchange; raises :class:`AuthFailed`.

    ``channel_binding`` is the ``tls-server-end-point`` data of the
    connection's TLS certificate (None without TLS): with it the server
    offers SCRAM-SHA-256-PLUS, and a client that selects it must prove it
    sees the same certificate (the ``c=`` attribute of its final message).
    ``mechanism`` is the one the client selected."""

    def __init__(
        self,
        user: str,
        verifier: Verifier | None,
        *,
        mechanism: str = MECHANISM,
        channel_binding: bytes | None = None,
    ) -> None:
        if mechanism not in mechanisms(channel_binding):
            raise AuthFailed(
                "client selected an invalid SASL authentication mechanism", sqlstate="08P01"
            )
        self.user = user
        self.known = verifier is not None
        self.verifier = verifier or Verifier.dummy(user)
        self.plus = mechanism == MECHANISM_PLUS
        self.channel_binding = channel_binding
        self.nonce = ""
        self.gs2 = ""
        self.client_first_bare = ""
        self.server_first = ""

    def first(self, client_first: bytes) -> bytes:
        try:
            text = client_first.decode("utf-8")
            gs2_cb, _authzid, bare = text.split(",", 2)
        except (UnicodeDecodeError, ValueError):
            raise AuthFailed("malformed SCRAM message", sqlstate="08P01") from None
        if gs2_cb.startswith("p="):
            if not self.plus:
                raise AuthFailed(
                    "malformed SCRAM message",
                    sqlstate="08P01",
                    detail="The client selected SCRAM-SHA-256 without channel binding,"
                    " but the SCRAM message includes channel binding data.",
                )
            if gs2_cb[2:] != CHANNEL_BINDING:
                raise AuthFailed(
                    f'unsupported SCRAM channel-binding type "{gs2_cb[2:]}"', sqlstate="08P01"
                )
        elif gs2_cb in ("n", "y"):
            if self.plus:
                raise AuthFailed(
                    "malformed SCRAM message",
                    sqlstate="08P01",
                    detail="The client selected SCRAM-SHA-256-PLUS,"
                    " but the SCRAM message does not include channel binding data.",
                )
            if gs2_cb == "y" and self.channel_binding is not None:
                # the client could bind but thinks this server cannot: a downgrade
                raise AuthFailed(
                    "SCRAM channel binding negotiation error",
                    sqlstate="08P01",
                    detail="The client supports SCRAM channel binding but thinks the server"
                    " does not. However, this server does support channel binding.",
                )
        else:
            raise AuthFailed("malformed SCRAM message", sqlstate="08P01")
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
        binding = self.gs2.encode()
        if self.plus:
            assert self.channel_binding is not None
            expected = _b64(binding + self.channel_binding)
            if not hmac.compare_digest(attrs.get("c", "").encode(), expected.encode()):
                raise AuthFailed("SCRAM channel binding check failed", sqlstate="28000")
        elif attrs.get("c") != _b64(binding):
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


def mechanisms(channel_binding: bytes | None) -> list[str]:
    """The SASL mechanisms offered on a connection, preferred first:
    SCRAM-SHA-256-PLUS only over TLS with a certificate that allows binding."""
    return [MECHANISM_PLUS, MECHANISM] if channel_binding is not None else [MECHANISM]


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
