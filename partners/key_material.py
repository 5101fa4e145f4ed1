"""The key material a partner receives after a credentials rotation, and the fingerprints read aloud.

A rotation's new secrets leave us once, out of band, as a compact JWE encrypted to the partner's
own JWE public key (`PartnerCredentials.partner_public_key_pem`; ECDH-ES+A256KW for EC/OKP keys,
RSA-OAEP-256 for RSA, content A256GCM - as face photos, `partners.face_jwe`): only the holder
of the partner's private key opens it, and the file can travel by any channel. Inside, a JSON
document (`FORMAT`):

    {"format", "partner" (slug), "credentials_version", "issued_at", "exported_at",
     "client_id", "secrets": {client_secret, plate_token_key, webhook_secret,
     outbound_webhook_secret}, "fingerprints": {same names: `fingerprint` of each},
     "plate_token": {"algorithm": "HMAC-SHA256", "input": ...},
     "previous_plate_key": {"credentials_version", "fingerprint", "accepted_until"} | null}

Fingerprints are the first 16 hex digits of the SHA-256 of a secret (of the decoded bytes for
the base64 plate-token key): what the admin shows and what two people compare over the phone,
in groups of four (`spoken`). The subject key never leaves us and is not in the document.

Django-free: the sandbox partner (`partners.sandbox.key_material`) opens it with this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from joserfc import jwe
from joserfc.errors import JoseError

from partners.face_jwe import CONTENT_ENCRYPTION, KEY_ALGORITHMS, key_algorithm, load_partner_public_key

FORMAT = "smarthome.partner-key-material/1"
CONTENT_TYPE = "application/json"
SECRET_FIELDS = ("client_secret", "plate_token_key", "webhook_secret", "outbound_webhook_secret")
PLATE_TOKEN = {
    "algorithm": "HMAC-SHA256",
    "input": "the plate upper-case, separators removed, Cyrillic А В Е К М Н О Р С Т У Х as Latin twins",
    "output": "lower-case hex",
}
MAX_DOCUMENT_BYTES = 16 * 1024


class MaterialError(ValueError):
    """Not key material this partner can open: wrong key, tampered, or not our format."""


def fingerprint(value: str | bytes) -> str:
    """Short SHA-256 fingerprint (first 16 hex chars) that identifies a secret without revealing it."""
    data = value.encode() if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()[:16]


def spoken(value: str) -> str:
    """A fingerprint in groups of four, as read aloud: ``3f9a 12bc 8e44 0d71``."""
    return " ".join(value[i:i + 4] for i in range(0, len(value), 4))


def secret_fingerprint(name: str, value: str) -> str:
    """The fingerprint of one secret of SECRET_FIELDS as the admin shows it ("" for none)."""
    if not value:
        return ""
    return fingerprint(base64.b64decode(value)) if name == "plate_token_key" else fingerprint(value)


def secret_fingerprints(secrets: dict[str, str]) -> dict[str, str]:
    return {name: secret_fingerprint(name, secrets.get(name, "")) for name in SECRET_FIELDS}


def _registry(algorithm: str) -> jwe.JWERegistry:
    """Only `algorithm` + A256GCM, and nothing larger than a key-material document."""
    registry = jwe.JWERegistry(algorithms=[algorithm, CONTENT_ENCRYPTION])
    registry.max_ciphertext_length = (4 * MAX_DOCUMENT_BYTES + 2) // 3
    return registry


def material_encrypt(document: dict, *, public_key_pem: str | bytes) -> str:
    """The compact JWE of `document` to the partner's public key (ValueError: not a public key)."""
    key = load_partner_public_key(public_key_pem)
    algorithm = key_algorithm(key)
    plaintext = json.dumps(document, ensure_ascii=False, sort_keys=True).encode()
    if len(plaintext) > MAX_DOCUMENT_BYTES:
        raise ValueError("key material document too large")
    header = {"alg": algorithm, "enc": CONTENT_ENCRYPTION, "cty": CONTENT_TYPE}
    return jwe.encrypt_compact(header, plaintext, key, registry=_registry(algorithm))


def material_decrypt(compact: str, private_keys) -> dict:
    """The document inside `compact`, opened with one of the partner's private keys (joserfc
    keys; the JWE header's algorithm picks those of its type). Checks the format, that every
    secret is there and that each matches its fingerprint. MaterialError otherwise."""
    algorithm = _header(compact).get("alg")
    if algorithm not in KEY_ALGORITHMS:
        raise MaterialError(f"unsupported algorithm {algorithm!r}")
    for key in private_keys:
        if key_algorithm(key) != algorithm:
            continue
        try:
            plaintext = jwe.decrypt_compact(compact, key, registry=_registry(algorithm)).plaintext or b""
        except (JoseError, ValueError):
            continue
        return _document(plaintext)
    raise MaterialError("cannot be opened with this partner's keys")


def _header(compact: str) -> dict:
    segments = compact.split(".") if isinstance(compact, str) else []
    if len(segments) != 5:
        raise MaterialError("not a compact JWE")
    try:
        header = json.loads(base64.urlsafe_b64decode(segments[0] + "=" * (-len(segments[0]) % 4)))
    except (ValueError, binascii.Error):
        raise MaterialError("malformed protected header") from None
    if not isinstance(header, dict):
        raise MaterialError("malformed protected header")
    return header


def _document(plaintext: bytes) -> dict:
    try:
        document = json.loads(plaintext)
    except ValueError:
        raise MaterialError("not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise MaterialError("not a key material document")
    secrets = document.get("secrets")
    if not isinstance(secrets, dict) or not all(isinstance(secrets.get(n), str) and secrets[n] for n in SECRET_FIELDS):
        raise MaterialError("secrets missing")
    try:
        computed = secret_fingerprints(secrets)
    except (ValueError, binascii.Error):
        raise MaterialError("malformed plate-token key") from None
    if document.get("fingerprints") != computed:
        raise MaterialError("a secret does not match its fingerprint")
    return document
