"""TLS: plaintext refused when TLS is configured (unless allowed), and
SCRAM-SHA-256-PLUS with tls-server-end-point channel binding, checked with
libpq (psql, psycopg) and a raw client. Certificates are made here with the
``cryptography`` package (``openssl`` for MD5/SHA-1 signatures, which it no
longer signs with)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import os
import secrets
import ssl
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

import fsql
from fsql.server import auth

from .conftest import FSQL, PASSWORD, USER, Server, start_server
from .rawclient import Raw, cstr, error_fields, msg, startup_packet

PLUS, PLAIN = "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"


# --- certificates ----------------------------------------------------------


def make_cert(folder: Path, kind: str = "rsa-sha256") -> tuple[Path, Path]:
    """A self-signed certificate for localhost of ``kind``: its files (cert, key)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = folder / f"{kind}.crt", folder / f"{kind}.key"
    if kind in ("rsa-md5", "rsa-sha1"):  # cryptography refuses to sign these
        digest = "-" + kind.split("-")[1]
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key_file),
             "-out", str(cert_file), "-days", "2", "-subj", "/CN=localhost", digest],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return cert_file, key_file
    key: object
    pss = None
    if kind.startswith("rsa"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind.startswith("ecdsa-p384"):
        key = ec.generate_private_key(ec.SECP384R1())
    elif kind.startswith("ecdsa"):
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif kind == "ed448":
        key = ed448.Ed448PrivateKey.generate()
    else:
        raise ValueError(kind)
    algorithm = {
        "sha224": hashes.SHA224(),
        "sha256": hashes.SHA256(),
        "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512(),
    }.get(kind.rsplit("-", 1)[-1])
    if "-pss-" in kind:
        assert algorithm is not None
        pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.DIGEST_LENGTH)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    )
    cert = builder.sign(key, algorithm, rsa_padding=pss)  # type: ignore[arg-type]
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def expected_binding(cert_file: Path) -> bytes | None:
    """tls-server-end-point data as RFC 5929 defines it, computed with
    ``cryptography`` (independently of the server's own DER reading)."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        return None
    if isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    return cert.fingerprint(algorithm)


@pytest.mark.parametrize(
    "kind",
    [
        "rsa-md5",
        "rsa-sha1",
        "rsa-sha224",
        "rsa-sha256",
        "rsa-sha384",
        "rsa-sha512",
        "rsa-pss-sha256",
        "rsa-pss-sha512",
        "ecdsa-sha256",
        "ecdsa-p384-sha384",
        "ecdsa-sha512",
        "ed25519",
        "ed448",
    ],
)
def test_end_point_hash_follows_the_signature_algorithm(tmp_path: Path, kind: str) -> None:
    cert_file, _ = make_cert(tmp_path, kind)
    got = auth.server_end_point(str(cert_file))
    want = expected_binding(cert_file)
    assert got == want
    if kind.startswith("ed"):
        assert got is None  # no hash function: no channel binding
    else:
        assert got is not None
        size = {"md5": 32, "sha1": 32, "sha224": 28, "sha384": 48, "sha512": 64}
        assert len(got) == size.get(kind.rsplit("-", 1)[-1], 32)


# --- servers ---------------------------------------------------------------


def tiny_store(path: Path) -> None:
    store = fsql.connect(path)
    try:
        store.create_feature_group(
            "transactions",
            pa.table({"customer_id": pa.array([1, 2], pa.int64()), "name": ["a", "b"]}),
            primary_key="customer_id",
        )
        auth.set_password(store.catalog, USER, PASSWORD)
    finally:
        store.close()


def tls_server(folder: Path, kind: str, *args: str) -> tuple[Server, Path]:
    cert, key = make_cert(folder / "certs", kind)
    path = folder / "store"
    tiny_store(path)
    return start_server(path, "--tls-cert", str(cert), "--tls-key", str(key), *args), cert


@pytest.fixture(scope="module")
def rsa_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    server, cert = tls_server(tmp_path_factory.mktemp("tls"), "rsa-sha256")
    try:
        yield server, cert
    finally:
        server.stop()


def dsn(server: Server, **extra: str) -> str:
    return server.dsn + "".join(f" {k}={v}" for k, v in extra.items())


def psql(server: Server, sql: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["psql", "-X", "-At", dsn(server, **extra), "-c", sql],
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def tls_raw(port: int) -> Raw:
    """A raw connection after SSLRequest and the TLS handshake."""
    r = Raw(port)
    r.send(struct.pack("!ii", 8, 80877103))
    assert r.recv_exact(1) == b"S"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    r.sock = ctx.wrap_socket(r.sock, server_hostname="localhost")
    return r


def sasl_mechanisms(r: Raw) -> list[str]:
    """Send a startup packet; the mechanisms of the AuthenticationSASL answer."""
    r.send(startup_packet(USER))
    k, body = r.read()
    assert k == b"R" and struct.unpack("!i", body[:4])[0] == 10, (k, body)
    return [m.decode() for m in body[4:].split(b"\0") if m]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def scram_login(
    r: Raw, mechanism: str, gs2: str, cbind: bytes = b"", password: str = PASSWORD
) -> tuple[bytes, dict[str, str] | None]:
    """A SCRAM exchange with the given mechanism, GS2 header and channel
    binding data (a test client, RFC 5802 client side); returns the last
    message kind and the fields of an ErrorResponse (None without one)."""
    bare = f"n=,r={b64(secrets.token_bytes(18))}"
    first = (gs2 + bare).encode()
    r.send(msg(b"p", cstr(mechanism) + struct.pack("!i", len(first)) + first))
    k, body = r.read()
    if k == b"E":
        return k, error_fields(body)
    assert k == b"R" and struct.unpack("!i", body[:4])[0] == 11, (k, body)
    server_first = body[4:].decode()
    attrs = dict(a.split("=", 1) for a in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    without_proof = f"c={b64(gs2.encode() + cbind)},r={attrs['r']}"
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    r.send(msg(b"p", f"{without_proof},p={b64(proof)}".encode()))
    while True:
        k, body = r.read()
        if k == b"E":
            return k, error_fields(body)
        if k == b"Z":
            return k, None


# --- plaintext refused -------------------------------------------------------


def test_plaintext_is_refused_when_tls_is_configured(rsa_server: tuple[Server, Path]) -> None:
    server, _ = rsa_server
    assert "TLS required" in server.log.read_text()
    r = Raw(server.port)
    try:
        r.send(startup_packet(USER))
        k, body = r.read()
        fields = error_fields(body)
        assert (k, fields["S"], fields["C"]) == (b"E", "FATAL", "28000")
        assert fields["M"].startswith("TLS is required")
        assert 'user "alice"' in fields["M"] and "no encryption" in fields["M"]
        with pytest.raises((ConnectionError, OSError)):
            r.read()
    finally:
        r.close()
    # an SSLRequest answered "N" is never sent by this server: it has a certificate
    r = Raw(server.port)
    try:
        r.send(struct.pack("!ii", 8, 80877103))
        assert r.recv_exact(1) == b"S"
    finally:
        r.close()
    with pytest.raises(psycopg.OperationalError, match="TLS is required"):
        psycopg.connect(dsn(server, sslmode="disable"), connect_timeout=10).close()
    out = psql(server, "SELECT 1", sslmode="disable")
    assert out.returncode == 2 and "TLS is required" in out.stderr, out


# --- SCRAM-SHA-256-PLUS --------------------------------------------------------


def test_libpq_connects_with_channel_binding_required(rsa_server: tuple[Server, Path]) -> None:
    server, _ = rsa_server
    with psycopg.connect(
        dsn(server, sslmode="require", channel_binding="require"), autocommit=True
    ) as c:
        assert c.pgconn.ssl_in_use
        assert c.execute("SELECT name FROM transactions WHERE customer_id = 2").fetchone() == ("b",)
    # psql's own libpq (another major version) computes the certificate hash itself
    out = psql(server, "SELECT count(*) FROM transactions", sslmode="require",
               channel_binding="require")  # fmt: skip
    assert (out.returncode, out.stdout.strip()) == (0, "2"), out
    # without channel binding over TLS: SCRAM-SHA-256 with the "n" flag still works
    with psycopg.connect(
        dsn(server, sslmode="require", channel_binding="disable"), autocommit=True
    ) as c:
        assert c.execute("SELECT 1").fetchone() == (1,)
    # a wrong password is still refused with channel binding
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            dsn(server, sslmode="require", channel_binding="require").replace(
                f"password={PASSWORD}", "password=wrong"
            )
        ).close()


def test_tls_advertises_plus_first_and_verifies_the_binding(
    rsa_server: tuple[Server, Path],
) -> None:
    server, cert = rsa_server
    right = expected_binding(cert)
    assert right is not None
    gs2 = "p=tls-server-end-point,,"

    def attempt(mechanism: str, header: str, cbind: bytes = b"") -> dict[str, str] | None:
        r = tls_raw(server.port)
        try:
            assert sasl_mechanisms(r) == [PLUS, PLAIN]
            return scram_login(r, mechanism, header, cbind)[1]
        finally:
            r.close()

    assert attempt(PLUS, gs2, right) is None  # logged in
    assert attempt(PLAIN, "n,,") is None
    wrong = attempt(PLUS, gs2, hashlib.sha256(b"another certificate").digest())
    assert wrong is not None and wrong["C"] == "28000"
    assert wrong["M"] == "SCRAM channel binding check failed"
    # the client says it could bind but thinks the server cannot: a downgrade
    downgrade = attempt(PLAIN, "y,,")
    assert downgrade is not None and downgrade["C"] == "08P01"
    assert downgrade["M"] == "SCRAM channel binding negotiation error"
    # PLUS without binding data, binding data without PLUS, another binding type
    for mechanism, header in ((PLUS, "n,,"), (PLAIN, gs2), (PLUS, "p=tls-unique,,")):
        fields = attempt(mechanism, header, right)
        assert fields is not None and fields["C"] == "08P01", (mechanism, header, fields)
        assert fields["S"] == "FATAL"


# --- plaintext allowed, --require-tls ------------------------------------------


def test_plaintext_allowed_offers_no_channel_binding(tmp_path: Path) -> None:
    server, _ = tls_server(tmp_path, "rsa-sha256", "--allow-plaintext")
    try:
        assert "TLS available, plaintext allowed" in server.log.read_text()
        r = Raw(server.port)
        try:
            assert sasl_mechanisms(r) == [PLAIN]
            # selecting PLUS over plaintext is refused
            _, fields = scram_login(r, PLUS, "p=tls-server-end-point,,", b"x" * 32)
            assert fields is not None and fields["C"] == "08P01"
        finally:
            r.close()
        with psycopg.connect(dsn(server, sslmode="disable"), autocommit=True) as c:
            assert not c.pgconn.ssl_in_use
            assert c.execute("SELECT count(*) FROM transactions").fetchone() == (2,)
        # channel_binding=require without TLS: the client refuses (libpq's job)
        with pytest.raises(psycopg.OperationalError, match="channel binding"):
            psycopg.connect(dsn(server, sslmode="disable", channel_binding="require")).close()
        out = psql(server, "SELECT 1", sslmode="disable", channel_binding="require")
        assert out.returncode == 2 and "channel binding" in out.stderr, out
        # over TLS the same server binds
        with psycopg.connect(dsn(server, sslmode="require", channel_binding="require")) as c:
            assert c.pgconn.ssl_in_use
        r = tls_raw(server.port)
        try:
            assert sasl_mechanisms(r) == [PLUS, PLAIN]
        finally:
            r.close()
    finally:
        server.stop()


def test_require_tls(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path / "certs")
    path = tmp_path / "store"
    tiny_store(path)
    for args, message in (
        (["--require-tls"], "--require-tls needs a certificate"),
        (
            ["--require-tls", "--allow-plaintext", "--tls-cert", str(cert), "--tls-key", str(key)],
            "contradict",
        ),
    ):
        out = subprocess.run(
            [str(FSQL), "--store", str(path), "serve", "--port", "0", *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode != 0 and message in out.stderr + out.stdout, out
    server = start_server(path, "--require-tls", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert "TLS required" in server.log.read_text()
        with pytest.raises(psycopg.OperationalError, match="TLS is required"):
            psycopg.connect(dsn(server, sslmode="disable")).close()
        # sslmode=prefer (libpq's default) upgrades, and binds
        with psycopg.connect(dsn(server, channel_binding="require")) as c:
            assert c.pgconn.ssl_in_use
    finally:
        server.stop()


# --- other signature algorithms ------------------------------------------------


@pytest.mark.parametrize("kind", ["ecdsa-p384-sha384", "rsa-pss-sha512"])
def test_channel_binding_with_other_signature_hashes(tmp_path: Path, kind: str) -> None:
    server, cert = tls_server(tmp_path, kind)
    try:
        with psycopg.connect(dsn(server, sslmode="require", channel_binding="require")) as c:
            assert c.execute("SELECT count(*) FROM transactions").fetchone() == (2,)
        out = psql(server, "SELECT 1", sslmode="require", channel_binding="require")
        assert (out.returncode, out.stdout.strip()) == (0, "1"), out
        binding = expected_binding(cert)
        assert binding is not None and len(binding) == (48 if "384" in kind else 64)
        r = tls_raw(server.port)
        try:
            assert sasl_mechanisms(r) == [PLUS, PLAIN]
            assert scram_login(r, PLUS, "p=tls-server-end-point,,", binding) == (b"Z", None)
        finally:
            r.close()
    finally:
        server.stop()


def test_no_channel_binding_for_a_certificate_without_a_hash(tmp_path: Path) -> None:
    server, _ = tls_server(tmp_path, "ed25519")
    try:
        r = tls_raw(server.port)
        try:
            assert sasl_mechanisms(r) == [PLAIN]  # RFC 5929 defines no binding for Ed25519
        finally:
            r.close()
        with pytest.raises(psycopg.OperationalError, match="channel binding"):
            psycopg.connect(dsn(server, sslmode="require", channel_binding="require")).close()
        # libpq's default (prefer) sends the "y" flag: accepted, as binding is impossible here
        with psycopg.connect(dsn(server, sslmode="require")) as c:
            assert c.pgconn.ssl_in_use
            assert c.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
