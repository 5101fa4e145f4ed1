"""End-to-end encryption of face photos to the partner's public key (JWE, joserfc).

EC keys (P-256 / X25519) use ECDH-ES+A256KW; RSA keys use RSA-OAEP-256. Content encryption is
A256GCM either way. Only the partner's private key opens the result: the service never keeps a
copy it could decrypt. The registry and its size limits come from `partners.face_jwe`, derived
from FACE_PHOTO_MAX_BYTES exactly as the partner's side derives them, and every JWE is checked
against them before it is queued.
"""

from django.conf import settings
from joserfc import jwe

from partners.face_jwe import check_compact_size, face_jwe_registry, key_algorithm, load_partner_public_key

__all__ = ["encrypt_for_partner", "load_partner_public_key"]


def encrypt_for_partner(plaintext: bytes, *, public_key_pem: str | bytes, key_id: str = "",
                        max_photo_bytes: int | None = None) -> str:
    """Compact JWE of `plaintext` that only the holder of the partner's private key can read.

    `max_photo_bytes` (default FACE_PHOTO_MAX_BYTES) bounds the plaintext: ValueError above it,
    and joserfc's ExceededSizeError if the JWE would not pass the partner's size checks."""
    limit = settings.FACE_PHOTO_MAX_BYTES if max_photo_bytes is None else max_photo_bytes
    if len(plaintext) > limit:
        raise ValueError(f"the photo is {len(plaintext)} bytes; the partner accepts at most {limit}")
    key = load_partner_public_key(public_key_pem)
    header = {"alg": key_algorithm(key), "enc": "A256GCM", "cty": "image/jpeg"}
    if key_id:
        header["kid"] = key_id
    registry = face_jwe_registry(max_photo_bytes=limit)
    compact = jwe.encrypt_compact(header, plaintext, key, registry=registry)
    check_compact_size(compact, registry)
    return compact
