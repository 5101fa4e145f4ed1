"""The service's Ed25519 audit key and the keyring that verifies what older keys signed.

Signed messages are plain text, so any Ed25519 tool can check them:
- a checkpoint of one log: `smarthome-audit-checkpoint/v2\n<log>\n<tree_size>\n<root hex>\n<signed_at>\n`
  (the single log before per-company logs signed `.../v1\n<tree_size>\n<root>\n<signed_at>\n`);
- an export's statement and the legacy-log link: a prefix line, then canonical JSON (sorted
  keys, no spaces, ASCII), see `statement_message`.
Key id = SHA-256 hex of the raw 32-byte public key; every signature is stored with it.

Rotation: put the new key in AUDIT_SIGNING_KEY and the old *public* key in AUDIT_VERIFY_KEYS;
everything the old key signed keeps verifying (`keyring`), and new checkpoints use the new key.
"""

import base64
import binascii
import datetime
import functools
import hashlib
import json
import re
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audit import conf
from audit.canonical import format_time
from core.crypto.signing import dev_key_text

MESSAGE_PREFIX = "smarthome-audit-checkpoint/v2"
LEGACY_MESSAGE_PREFIX = "smarthome-audit-checkpoint/v1"
DEV_KEY_FILE = "audit-ed25519.pem"
_PEM_BLOCK = re.compile(r"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


def _when(signed_at: datetime.datetime | str) -> str:
    return signed_at if isinstance(signed_at, str) else format_time(signed_at)


def checkpoint_message(log: str, tree_size: int, root_hash: str, signed_at: datetime.datetime | str) -> bytes:
    return f"{MESSAGE_PREFIX}\n{log}\n{tree_size}\n{root_hash}\n{_when(signed_at)}\n".encode("ascii")


def legacy_checkpoint_message(tree_size: int, root_hash: str, signed_at: datetime.datetime | str) -> bytes:
    return f"{LEGACY_MESSAGE_PREFIX}\n{tree_size}\n{root_hash}\n{_when(signed_at)}\n".encode("ascii")


def canonical_json(document) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def statement_message(prefix: str, document: dict) -> bytes:
    """`<prefix>\n<canonical JSON>`: what an export statement or the legacy link signs."""
    return prefix.encode("ascii") + b"\n" + canonical_json(document)


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


def parse_public_keys(text: str) -> list[Ed25519PublicKey]:
    """PEM blocks and/or base64 raw 32-byte public keys (separated by commas, spaces or newlines)."""
    keys = [load_public_key_pem(block) for block in _PEM_BLOCK.findall(text)]
    for item in re.split(r"[\s,]+", _PEM_BLOCK.sub(" ", text).strip()):
        if not item:
            continue
        try:
            raw = base64.b64decode(item, validate=True)
        except binascii.Error as exc:
            raise ImproperlyConfigured("AUDIT_VERIFY_KEYS holds something that is neither PEM nor base64") from exc
        if len(raw) != 32:
            raise ImproperlyConfigured("AUDIT_VERIFY_KEYS: a raw Ed25519 public key has 32 bytes")
        keys.append(Ed25519PublicKey.from_public_bytes(raw))
    return keys


def _dev_key() -> Ed25519PrivateKey:
    return parse_private_key(dev_key_text(Path(getattr(settings, "VAR_DIR", ".")) / DEV_KEY_FILE))


@functools.cache
def _key_for(text: str) -> Ed25519PrivateKey:
    return parse_private_key(text) if text else _dev_key()


def private_key() -> Ed25519PrivateKey:
    """The current signing key. Outside production an empty AUDIT_SIGNING_KEY means a generated
    development key; in production (settings.PRODUCTION, never guessed) it is an error."""
    text = conf.signing_key_text()
    if not text and conf.is_production():
        raise ImproperlyConfigured("production requires AUDIT_SIGNING_KEY")
    return _key_for(text)


def public_key() -> Ed25519PublicKey:
    return private_key().public_key()


def keyring() -> dict[str, Ed25519PublicKey]:
    """key id -> public key: the current key first, then AUDIT_VERIFY_KEYS (retired keys)."""
    current = public_key()
    ring = {key_id(current): current}
    for key in _verify_keys(conf.verify_keys_text()):
        ring.setdefault(key_id(key), key)
    return ring


@functools.cache
def _verify_keys(text: str) -> tuple[Ed25519PublicKey, ...]:
    return tuple(parse_public_keys(text))


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


def verify_with(ring: dict[str, Ed25519PublicKey], signed_key_id: str, message: bytes, signature_b64: str) -> str:
    """"" when `signature_b64` is good under the keyring's key `signed_key_id`, else the problem."""
    key = ring.get(signed_key_id or "")
    if key is None:
        return f"signed by unknown key {str(signed_key_id)[:16]}"
    if not verify(message, signature_b64, key):
        return "signature invalid"
    return ""
