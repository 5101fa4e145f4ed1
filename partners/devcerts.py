"""The local development PKI: every certificate and key the service and the sandbox partner use.

`generate_dev_pki(out_dir)` writes PEM files (certificates 0644, private keys 0600):

==========================================  =====================================================
``ca.pem`` / ``ca.key``                      "smarthome dev CA" (EC P-256, 10 years) - the only CA
                                             either side trusts for TLS
``sandbox-server.pem`` / ``.key``            the sandbox partner's TLS server certificate
                                             (localhost, 127.0.0.1, ::1; serverAuth)
``smarthome-client.pem`` / ``.key``          OUR client certificate when we call the partner
                                             (CN=smarthome, DNS smarthome.dev.invalid; clientAuth)
``partner-client.pem`` / ``.key``            the PARTNER's client certificate when it calls us
                                             (CN=sandbox-partner, DNS sandbox-partner.dev.invalid)
``smarthome-server.pem`` / ``.key``          our own server certificate for nginx (localhost, 127.0.0.1)
``rogue-ca.pem`` / ``.key``                  an unrelated CA, for negative tests, and
``rogue-client.pem`` / ``rogue-server.pem``  certificates it signed (with their ``.key``)
``partner-jwe.key`` / ``.pub.pem``           the partner's EC P-256 key pair face photos are encrypted
                                             to (JWE ``ECDH-ES+A256KW`` + ``A256GCM``)
``partner-jwe-rsa.key`` / ``.pub.pem``       the same as RSA-3072 (JWE ``RSA-OAEP-256`` + ``A256GCM``)
``sandbox-jwt.key``                          the sandbox's access-token signing key (EC P-256, ES256)
==========================================  =====================================================

Certificate keys are EC P-256; client certificates carry a ``.dev.invalid`` DNS name because
RFC 5280 verifiers want a subjectAltName on every leaf. Generation is idempotent: an existing
file is kept unless ``force=True``; a certificate is re-issued when its issuing CA was
(re)generated in the same run, so the set stays consistent. Only `cryptography` is used, so
this module runs without Django settings.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=825)
# Certificates are back-dated a little so a peer whose clock is slightly behind accepts them.
BACKDATE = datetime.timedelta(minutes=5)
RSA_JWE_KEY_BITS = 3072


@dataclass(frozen=True)
class _Authority:
    name: str
    common_name: str


@dataclass(frozen=True)
class _Leaf:
    name: str
    issuer: str
    common_name: str
    usage: x509.ObjectIdentifier
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class _KeyPair:
    name: str
    kind: str  # "ec" or "rsa"
    with_public: bool = True


_AUTHORITIES = (
    _Authority("ca", "smarthome dev CA"),
    _Authority("rogue-ca", "rogue dev CA"),
)
_SERVER, _CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
# ".invalid" names (RFC 2606) can never be someone else's.
_LEAVES = (
    _Leaf("sandbox-server", "ca", "sandbox partner", _SERVER, ("localhost",), ("127.0.0.1", "::1")),
    _Leaf("smarthome-client", "ca", "smarthome", _CLIENT, ("smarthome.dev.invalid",)),
    _Leaf("partner-client", "ca", "sandbox-partner", _CLIENT, ("sandbox-partner.dev.invalid",)),
    _Leaf("smarthome-server", "ca", "smarthome", _SERVER, ("localhost",), ("127.0.0.1",)),
    _Leaf("rogue-client", "rogue-ca", "smarthome", _CLIENT, ("smarthome.dev.invalid",)),
    _Leaf("rogue-server", "rogue-ca", "sandbox partner", _SERVER, ("localhost",), ("127.0.0.1", "::1")),
)
_KEY_PAIRS = (
    _KeyPair("partner-jwe", "ec"),
    _KeyPair("partner-jwe-rsa", "rsa"),
    _KeyPair("sandbox-jwt", "ec", with_public=False),
)


def generate_dev_pki(out_dir: Path, *, force: bool = False) -> dict[str, Path]:
    """Create the development PKI in `out_dir` and return ``{file name: path}`` for every file.

    Existing files are kept unless `force`; see the module docstring for the file list.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _Run(out_dir, force)
    for authority in _AUTHORITIES:
        run.authority(authority)
    for leaf in _LEAVES:
        run.leaf(leaf)
    for pair in _KEY_PAIRS:
        run.key_pair(pair)
    return dict(sorted(run.paths.items()))


def fingerprint_sha256(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER encoding as lowercase hex without colons."""
    return hashlib.sha256(_der(cert_pem)).hexdigest()


def x5t_s256(cert_pem_or_der: bytes) -> str:
    """The RFC 8705 ``x5t#S256`` certificate thumbprint: base64url(SHA-256(DER)) without padding."""
    digest = hashlib.sha256(_der(cert_pem_or_der)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _der(cert_pem_or_der: bytes) -> bytes:
    if cert_pem_or_der.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(cert_pem_or_der).public_bytes(serialization.Encoding.DER)
    return cert_pem_or_der


@dataclass
class _Run:
    """One generation run: remembers which CAs were (re)made so their certificates follow."""

    out_dir: Path
    force: bool
    paths: dict[str, Path] = field(default_factory=dict)
    regenerated: set[str] = field(default_factory=set)
    authorities: dict[str, tuple[x509.Certificate, ec.EllipticCurvePrivateKey]] = field(default_factory=dict)

    def authority(self, spec: _Authority) -> None:
        cert_path, key_path = self._pair_paths(spec.name)
        if self._must_write(cert_path, key_path):
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name)])
            now = _now()
            cert = (
                _builder(name, name, key.public_key(), now, now + CA_VALIDITY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(_key_usage(cert_sign=True), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256())
            )
            _write_private_key(key_path, key)
            _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
            self.regenerated.add(spec.name)
        else:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        self.authorities[spec.name] = (cert, key)

    def leaf(self, spec: _Leaf) -> None:
        cert_path, key_path = self._pair_paths(spec.name)
        if not (self._must_write(cert_path, key_path) or spec.issuer in self.regenerated):
            return
        ca_cert, ca_key = self.authorities[spec.issuer]
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smarthome dev"),
                x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name),
            ]
        )
        now = _now()
        builder = (
            _builder(subject, ca_cert.subject, key.public_key(), now, now + LEAF_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([spec.usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        san = [x509.DNSName(n) for n in spec.dns_names]
        san += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in spec.ip_addresses]
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write_private_key(key_path, key)
        _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))

    def key_pair(self, spec: _KeyPair) -> None:
        key_path = self._path(f"{spec.name}.key")
        pub_path = self._path(f"{spec.name}.pub.pem") if spec.with_public else None
        if not self._must_write(key_path, *([pub_path] if pub_path else [])):
            return
        if spec.kind == "rsa":
            key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_JWE_KEY_BITS)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        _write_private_key(key_path, key)
        if pub_path:
            _write_public(
                pub_path,
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
            )

    def _pair_paths(self, name: str) -> tuple[Path, Path]:
        return self._path(f"{name}.pem"), self._path(f"{name}.key")

    def _path(self, file_name: str) -> Path:
        path = self.out_dir / file_name
        self.paths[file_name] = path
        return path

    def _must_write(self, *paths: Path) -> bool:
        return self.force or not all(p.exists() for p in paths)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) - BACKDATE


def _builder(subject, issuer, public_key, not_before, not_after) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private_key(path: Path, key) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Created 0600 from the start, so the key is never readable by others, not even briefly.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _write_public(path: Path, pem: bytes) -> None:
    path.write_bytes(pem)
    path.chmod(0o644)
