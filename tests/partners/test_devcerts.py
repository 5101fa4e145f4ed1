"""The development PKI: files, chains, usages, idempotent regeneration, fingerprints."""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import ipaddress
import ssl
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from joserfc import jwe
from joserfc.jwk import ECKey, RSAKey

from partners.devcerts import fingerprint_sha256, generate_dev_pki, x5t_s256
from partners.management.commands.make_dev_certs import Command

pytestmark = pytest.mark.partner

CERT_PAIRS = [
    "ca",
    "rogue-ca",
    "sandbox-server",
    "smarthome-client",
    "partner-client",
    "smarthome-server",
    "rogue-client",
    "rogue-server",
]
EXPECTED_FILES = sorted(
    [f"{name}.pem" for name in CERT_PAIRS]
    + [f"{name}.key" for name in CERT_PAIRS]
    + [
        "partner-jwe.key",
        "partner-jwe.pub.pem",
        "partner-jwe-rsa.key",
        "partner-jwe-rsa.pub.pem",
        "sandbox-jwt.key",
    ]
)


def cert(pki, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pki[f"{name}.pem"].read_bytes())


def private_key(pki, file_name: str):
    return serialization.load_pem_private_key(pki[file_name].read_bytes(), password=None)


def common_name(certificate: x509.Certificate) -> str:
    return certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_generates_every_file_with_private_keys_readable_by_owner_only(tmp_path):
    pki = generate_dev_pki(tmp_path / "certs")
    assert sorted(pki) == EXPECTED_FILES
    for name, path in pki.items():
        assert path == tmp_path / "certs" / name
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if name.endswith(".key") else 0o644), name


def test_ca_is_a_ten_year_p256_certificate_authority(dev_pki):
    ca = cert(dev_pki, "ca")
    assert common_name(ca) == "smarthome dev CA"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert not usage.digital_signature
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert datetime.timedelta(days=3649) < lifetime < datetime.timedelta(days=3651)


def _verify_server(pki, leaf: str, ca: str, name: x509.GeneralName) -> None:
    verifier = PolicyBuilder().store(Store([cert(pki, ca)])).build_server_verifier(name)
    verifier.verify(cert(pki, leaf), [])


def _verify_client(pki, leaf: str, ca: str) -> None:
    PolicyBuilder().store(Store([cert(pki, ca)])).build_client_verifier().verify(cert(pki, leaf), [])


@pytest.mark.parametrize(
    ("leaf", "names"),
    [
        ("sandbox-server", ["localhost", "127.0.0.1", "::1"]),
        ("smarthome-server", ["localhost", "127.0.0.1"]),
    ],
)
def test_server_certificates_verify_for_their_names_under_the_dev_ca_only(dev_pki, leaf, names):
    for name in names:
        general = x509.DNSName(name) if name == "localhost" else x509.IPAddress(ipaddress.ip_address(name))
        _verify_server(dev_pki, leaf, "ca", general)
        with pytest.raises(VerificationError):
            _verify_server(dev_pki, leaf, "rogue-ca", general)
    with pytest.raises(VerificationError):
        _verify_server(dev_pki, leaf, "ca", x509.DNSName("partner.example"))


@pytest.mark.parametrize(
    ("leaf", "cn"), [("smarthome-client", "smarthome"), ("partner-client", "sandbox-partner")]
)
def test_client_certificates_are_client_auth_only_under_the_dev_ca(dev_pki, leaf, cn):
    _verify_client(dev_pki, leaf, "ca")
    with pytest.raises(VerificationError):
        _verify_client(dev_pki, leaf, "rogue-ca")
    with pytest.raises(VerificationError):  # not a server certificate
        _verify_server(dev_pki, leaf, "ca", x509.DNSName("localhost"))
    assert common_name(cert(dev_pki, leaf)) == cn
    usages = cert(dev_pki, leaf).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_rogue_certificates_chain_only_to_the_rogue_ca(dev_pki):
    _verify_client(dev_pki, "rogue-client", "rogue-ca")
    _verify_server(dev_pki, "rogue-server", "rogue-ca", x509.DNSName("localhost"))
    with pytest.raises(VerificationError):
        _verify_client(dev_pki, "rogue-client", "ca")
    with pytest.raises(VerificationError):
        _verify_server(dev_pki, "rogue-server", "ca", x509.DNSName("localhost"))


def test_every_certificate_matches_its_private_key(dev_pki):
    for name in CERT_PAIRS:
        public = cert(dev_pki, name).public_key()
        assert private_key(dev_pki, f"{name}.key").public_key() == public, name


def test_jwe_and_token_keys_have_the_expected_types_and_round_trip(dev_pki):
    ec_private = private_key(dev_pki, "partner-jwe.key")
    rsa_private = private_key(dev_pki, "partner-jwe-rsa.key")
    assert isinstance(ec_private, ec.EllipticCurvePrivateKey)
    assert ec_private.curve.name == "secp256r1"
    assert isinstance(rsa_private, rsa.RSAPrivateKey)
    assert rsa_private.key_size == 3072
    assert isinstance(private_key(dev_pki, "sandbox-jwt.key"), ec.EllipticCurvePrivateKey)

    ec_public = ECKey.import_key(dev_pki["partner-jwe.pub.pem"].read_bytes())
    token = jwe.encrypt_compact({"alg": "ECDH-ES+A256KW", "enc": "A256GCM"}, b"photo", ec_public)
    ec_key = ECKey.import_key(dev_pki["partner-jwe.key"].read_bytes())
    assert jwe.decrypt_compact(token, ec_key).plaintext == b"photo"

    registry = jwe.JWERegistry(algorithms=["RSA-OAEP-256", "A256GCM"])
    rsa_public = RSAKey.import_key(dev_pki["partner-jwe-rsa.pub.pem"].read_bytes())
    token = jwe.encrypt_compact(
        {"alg": "RSA-OAEP-256", "enc": "A256GCM"}, b"photo", rsa_public, registry=registry
    )
    rsa_key = RSAKey.import_key(dev_pki["partner-jwe-rsa.key"].read_bytes())
    assert jwe.decrypt_compact(token, rsa_key, registry=registry).plaintext == b"photo"


def _contents(pki) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in pki.items()}


def test_rerun_keeps_files_and_force_replaces_them(tmp_path):
    first = _contents(generate_dev_pki(tmp_path))
    assert _contents(generate_dev_pki(tmp_path)) == first
    forced = _contents(generate_dev_pki(tmp_path, force=True))
    assert all(forced[name] != first[name] for name in first)


def test_missing_leaf_is_reissued_alone_and_missing_ca_reissues_its_certificates(tmp_path):
    pki = generate_dev_pki(tmp_path)
    before = _contents(pki)
    pki["partner-client.key"].unlink()
    after = _contents(generate_dev_pki(tmp_path))
    assert {name for name in before if after[name] != before[name]} == {
        "partner-client.pem",
        "partner-client.key",
    }
    _verify_client(pki, "partner-client", "ca")

    pki["ca.pem"].unlink()
    again = _contents(generate_dev_pki(tmp_path))
    changed = {name for name in after if again[name] != after[name]}
    signed_by_ca = {"sandbox-server", "smarthome-client", "partner-client", "smarthome-server"}
    assert changed == {"ca.pem", "ca.key"} | {f"{n}.{ext}" for n in signed_by_ca for ext in ("pem", "key")}
    for leaf in ("smarthome-client", "partner-client"):
        _verify_client(pki, leaf, "ca")


def test_fingerprint_and_rfc8705_thumbprint(dev_pki):
    pem = dev_pki["smarthome-client.pem"].read_bytes()
    der = cert(dev_pki, "smarthome-client").public_bytes(serialization.Encoding.DER)
    fingerprint = fingerprint_sha256(pem)
    assert fingerprint == hashlib.sha256(der).hexdigest()
    assert fingerprint == cert(dev_pki, "smarthome-client").fingerprint(hashes.SHA256()).hex()
    assert fingerprint == fingerprint.lower()
    assert ":" not in fingerprint
    expected = base64.urlsafe_b64encode(bytes.fromhex(fingerprint)).rstrip(b"=").decode()
    assert x5t_s256(pem) == x5t_s256(der) == expected
    assert "=" not in expected
    assert len(expected) == 43


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args):
        pass


@contextmanager
def _tls_server(pki, name: str) -> Iterator[str]:
    """A one-thread HTTPS server presenting certificate `name`; yields its https URL."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki[f"{name}.pem"], pki[f"{name}.key"])
    server = HTTPServer(("127.0.0.1", 0), _Hello)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def test_client_pinning_the_dev_ca_refuses_a_server_certificate_from_the_rogue_ca(dev_pki):
    session = requests.Session()
    session.trust_env = False
    with _tls_server(dev_pki, "sandbox-server") as url:
        assert session.get(url, verify=str(dev_pki["ca.pem"]), timeout=5).text == "hello"
    with (
        _tls_server(dev_pki, "rogue-server") as url,
        pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        session.get(url, verify=str(dev_pki["ca.pem"]), timeout=5)


def test_make_dev_certs_command_prints_paths_and_fingerprints(tmp_path):
    out = io.StringIO()
    Command(stdout=out).handle(out=str(tmp_path), force=False)
    lines = out.getvalue().splitlines()
    ca_line = next(line for line in lines if line.startswith(str(tmp_path / "ca.pem")))
    assert ca_line.endswith(f"sha256={fingerprint_sha256((tmp_path / 'ca.pem').read_bytes())}")
    assert str(tmp_path / "partner-jwe.key") in lines
    assert lines[-1].endswith(f"21 files in {tmp_path}")
