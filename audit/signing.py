"""The service's Ed25519 audit key: signs checkpoints, published for offline verification.

The signed message is plain text, so any Ed25519 tool can check it:
`smarthome-audit-checkpoint/v1\n<tree_size>\n<root hash hex>\n<signed_at>\n`.
Key id = SHA-256 hex of the raw 32-byte public key.
"""

import base64
import binascii
import datetime
import functools
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audit import conf
from audit.canonical import format_time
from core.crypto.signing import dev_key_text

MESSAGE_PREFIX = "smarthome-audit-checkpoint/v1"
DEV_KEY_FILE = "audit-ed25519.pem"


def checkpoint_message(tree_size: int, root_hash: str, signed_at: datetime.datetime | str) -> bytes:
    when = signed_at if isinstance(signed_at, str) else format_time(signed_at)
    return f"{MESSAGE_PREFIX}\n{tree_size}\n{root_hash}\n{when}\n".encode("ascii")


def parse_private_key(text: str) -> Ed25519PrivateKey:
    """PEM (PKCS#8) or base64 of the raw 32-byte seed."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ImproperlyConfigured("AUDIT_SIGNING_KEY is not an Ed25519 key")
        return key
    try:
        seed = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ImproperlyConfigured("AUDIT_SIGNING_KEY is neither PEM nor base64") from exc
    if len(seed) != 32:
        raise ImproperlyConfigured("AUDIT_SIGNING_KEY must hold a 32-byte Ed25519 seed")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _dev_key() -> Ed25519PrivateKey:
    return parse_private_key(dev_key_text(Path(getattr(settings, "VAR_DIR", ".")) / DEV_KEY_FILE))


@functools.cache
def _key_for(text: str) -> Ed25519PrivateKey:
    return parse_private_key(text) if text else _dev_key()


def private_key() -> Ed25519PrivateKey:
    text = conf.signing_key_text()
    if not text and conf.is_production():
        raise ImproperlyConfigured("production requires AUDIT_SIGNING_KEY")
    return _key_for(text)


def public_key() -> Ed25519PublicKey:
    return private_key().public_key()


def raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public_bytes(key)).hexdigest()


def public_key_pem(key: Ed25519PublicKey | None = None) -> str:
    key = key or public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key_pem(pem: str | bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def sign(message: bytes) -> tuple[str, str]:
    """-> (key id, base64 signature)."""
    key = private_key()
    return key_id(key.public_key()), base64.b64encode(key.sign(message)).decode()


def verify(message: bytes, signature_b64: str, key: Ed25519PublicKey | None = None) -> bool:
    key = key or public_key()
    try:
        key.verify(base64.b64decode(signature_b64), message)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
