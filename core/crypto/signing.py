"""Ed25519 signing keyrings: one current private key signs, the current and retired public keys verify.

Every signature names its key by id (SHA-256 hex of the raw 32-byte public key), so rotating
the signing key does not break what the old key signed: the old public key stays in the ring as
*retired* (public only - the retired private key is destroyed and can sign nothing new).

Configuration of one keyring, by two settings:
- ``<NAME>``: the current private key, PEM (PKCS#8) or base64 of the 32-byte seed;
- ``<NAME>_RETIRED``: comma-separated retired public keys, base64 of the raw 32 bytes.

When ``<NAME>`` is empty: in production (settings.PRODUCTION) the keyring refuses to load
(ImproperlyConfigured); elsewhere a development key is generated once into
``$SMARTHOME_VAR_DIR/<dev file>`` (mode 0600).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed


def raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public_bytes(key)).hexdigest()


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def private_key_from_text(text: str, *, name: str) -> Ed25519PrivateKey:
    """PEM (PKCS#8) or base64 of the raw 32-byte seed; ImproperlyConfigured naming `name` otherwise."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name} is not a readable PEM private key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ImproperlyConfigured(f"{name} is not an Ed25519 key")
        return key
    return Ed25519PrivateKey.from_private_bytes(_raw32(text, name=name, what="seed"))


def public_key_from_text(text: str, *, name: str) -> Ed25519PublicKey:
    """Base64 of the raw 32-byte Ed25519 public key."""
    return Ed25519PublicKey.from_public_bytes(_raw32(text, name=name, what="public key"))


def _raw32(text: str, *, name: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImproperlyConfigured(f"{name} is neither PEM nor base64") from exc
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{name} must hold a 32-byte Ed25519 {what}, got {len(raw)} bytes")
    return raw


@dataclass(frozen=True)
class SigningKeyring:
    private_key: Ed25519PrivateKey
    retired: dict[str, Ed25519PublicKey]

    @property
    def current_key_id(self) -> str:
        return key_id(self.private_key.public_key())

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """{key id: public key}, the current key first."""
        return {self.current_key_id: self.private_key.public_key(), **self.retired}

    def sign(self, message: bytes) -> tuple[str, str]:
        """-> (key id, base64 signature) under the current key."""
        return self.current_key_id, base64.b64encode(self.private_key.sign(message)).decode()

    def verify(self, message: bytes, signature_b64: str, *, key_id: str) -> bool:
        """True when the key `key_id` of this ring (current or retired) signed `message`."""
        key = self.public_keys().get(key_id) if isinstance(key_id, str) else None
        return key is not None and signature_verifies(key, message, signature_b64)


def signature_verifies(key: Ed25519PublicKey, message: bytes, signature_b64: str) -> bool:
    if not isinstance(signature_b64, str):
        return False
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


_lock = threading.Lock()
_cache: dict[str, SigningKeyring] = {}


def signing_keyring(name: str, *, dev_file: str) -> SigningKeyring:
    """The keyring configured by the settings `name` and `name`_RETIRED (cached per process;
    a settings change clears the cache)."""
    with _lock:
        keyring = _cache.get(name)
        if keyring is None:
            keyring = _cache[name] = _load(name, dev_file)
        return keyring


def _load(name: str, dev_file: str) -> SigningKeyring:
    text = str(getattr(settings, name, "") or "")
    if not text:
        if getattr(settings, "PRODUCTION", False):
            raise ImproperlyConfigured(f"production requires {name} (no development key is generated)")
        text = dev_key_text(Path(settings.VAR_DIR) / dev_file)
    private_key = private_key_from_text(text, name=name)
    retired_name = f"{name}_RETIRED"
    retired = {}
    for entry in (part for part in str(getattr(settings, retired_name, "") or "").split(",") if part.strip()):
        key = public_key_from_text(entry, name=retired_name)
        retired[key_id(key)] = key
    retired.pop(key_id(private_key.public_key()), None)
    return SigningKeyring(private_key=private_key, retired=retired)


def dev_key_text(path: Path) -> str:
    """The development key in `path`, generated once (0600; O_EXCL, so racing processes agree)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    return path.read_text()


def _on_setting_changed(setting, **kwargs):
    if setting in ("PRODUCTION", "VAR_DIR") or setting.removesuffix("_RETIRED") in _cache:
        with _lock:
            _cache.clear()


setting_changed.connect(_on_setting_changed)
