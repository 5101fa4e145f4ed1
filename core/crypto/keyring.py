"""The keyring and the envelope of every encrypted value.

Keys come from FIELD_ENCRYPTION_KEYS = "kid:base64(32 bytes),kid2:..."; the FIRST key encrypts,
every key decrypts (so a new key goes first and the old one stays until
`manage.py rotate_encryption_keys` has re-encrypted every row). Without the variable, outside
production (settings.PRODUCTION), a keyring file is generated once in $SMARTHOME_VAR_DIR/field-keys (mode 0600) so
a developer's data survives restarts; there is never a key constant in the code.

A stored value is text: ``v1:<kid>:<base64url(nonce[12] || ciphertext || tag[16])>``. The
associated data is ``b"<db_table>.<column>"``, so a ciphertext copied into another column or
table does not decrypt. Every failure raises DecryptionError; a ciphertext is never returned
as if it were the value.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.signals import setting_changed

VERSION = "v1"
NONCE_BYTES = 12
KEY_BYTES = 32
KID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class KeyringError(Exception):
    """The keyring configuration is missing or malformed."""


class DecryptionError(Exception):
    """A stored value cannot be decrypted: unknown key id, wrong key, tampered or misplaced."""


@dataclass(frozen=True)
class Keyring:
    primary_kid: str
    keys: dict[str, bytes]

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """Parse "kid:base64key,kid2:base64key"; the first entry is the primary."""
        entries = [part.strip() for part in spec.split(",") if part.strip()]
        if not entries:
            raise KeyringError("FIELD_ENCRYPTION_KEYS is empty")
        keys: dict[str, bytes] = {}
        for entry in entries:
            kid, sep, encoded = entry.partition(":")
            if not sep or not KID_PATTERN.match(kid):
                raise KeyringError(
                    f"keyring entry must be 'kid:base64key' with kid [A-Za-z0-9_-]{{1,32}} (got kid {kid!r})"
                )
            if kid in keys:
                raise KeyringError(f"key id {kid!r} appears twice in the keyring")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise KeyringError(f"key {kid!r} is not valid base64") from exc
            if len(key) != KEY_BYTES:
                raise KeyringError(f"key {kid!r} must be {KEY_BYTES} bytes (AES-256), got {len(key)}")
            keys[kid] = key
        return cls(primary_kid=entries[0].partition(":")[0], keys=keys)

    def encrypt(self, plaintext: str, *, aad: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.primary_kid]).encrypt(nonce, plaintext.encode("utf-8"), aad)
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
        return f"{VERSION}:{self.primary_kid}:{body}"

    def decrypt(self, envelope: str, *, aad: bytes) -> str:
        kid, body = _split(envelope)
        key = self.keys.get(kid)
        if key is None:
            raise DecryptionError(f"value was encrypted with key id {kid!r}, which is not in the keyring")
        if len(body) < NONCE_BYTES + 16:
            raise DecryptionError("encrypted value is truncated")
        try:
            plaintext = AESGCM(key).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptionError(
                f"authentication failed for a value under key id {kid!r} "
                f"(wrong key, tampered, or copied from another column than {aad.decode(errors='replace')})"
            ) from None
        return plaintext.decode("utf-8")


def envelope_kid(envelope: str) -> str:
    """The key id an envelope was encrypted with (raises DecryptionError if it is not one)."""
    return _split(envelope)[0]


def _split(envelope: str) -> tuple[str, bytes]:
    if not isinstance(envelope, str):
        raise DecryptionError(f"encrypted value must be text, got {type(envelope).__name__}")
    version, sep1, rest = envelope.partition(":")
    kid, sep2, body = rest.partition(":")
    if version != VERSION or not sep1 or not sep2 or not KID_PATTERN.match(kid):
        raise DecryptionError("stored value is not an encrypted envelope (v1:<kid>:<data>)")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise DecryptionError("encrypted value is not valid base64url") from None
    return kid, raw


_lock = threading.Lock()
_cached: Keyring | None = None


def get_keyring() -> Keyring:
    """The process keyring (parsed once; `reset_keyring()` or a settings change re-reads it)."""
    global _cached
    keyring = _cached
    if keyring is None:
        with _lock:
            if _cached is None:
                _cached = _load()
            keyring = _cached
    return keyring


def reset_keyring() -> None:
    global _cached
    with _lock:
        _cached = None


def _on_setting_changed(setting, **kwargs):
    if setting in ("FIELD_ENCRYPTION_KEYS", "FIELD_ENCRYPTION_KEY_FILE", "PRODUCTION"):
        reset_keyring()


setting_changed.connect(_on_setting_changed)


def _load() -> Keyring:
    spec = getattr(settings, "FIELD_ENCRYPTION_KEYS", "")
    if spec:
        return Keyring.parse(spec)
    if getattr(settings, "PRODUCTION", False):
        raise KeyringError("production requires FIELD_ENCRYPTION_KEYS (no development key file is used)")
    key_file = getattr(settings, "FIELD_ENCRYPTION_KEY_FILE", None)
    if not key_file:
        raise KeyringError("FIELD_ENCRYPTION_KEYS is not set (and no development key file is allowed)")
    return Keyring.parse(_dev_key_file(Path(key_file)))


def _dev_key_file(path: Path) -> str:
    """Read the development keyring file, creating it (0600, O_EXCL) on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        spec = f"dev1:{generate_key()}\n"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process won the race; read its key
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(spec)
    return path.read_text().strip()


def generate_key() -> str:
    """A fresh AES-256 key, base64 (for a FIELD_ENCRYPTION_KEYS entry)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def encrypt(plaintext: str, *, aad: bytes) -> str:
    return get_keyring().encrypt(plaintext, aad=aad)


def decrypt(envelope: str, *, aad: bytes) -> str:
    return get_keyring().decrypt(envelope, aad=aad)
