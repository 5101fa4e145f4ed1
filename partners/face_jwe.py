"""The face photo's JWE in the partner contract: algorithms and size limits, shared by both ends.

We encrypt a face photo to the partner's public key (`consent.encryption`); the partner - the
sandbox here (`partners.sandbox.faces`) - decrypts it. joserfc checks the size of every segment
of a compact JWE against its `JWERegistry` before decrypting, and its defaults (64 KiB of
base64url ciphertext) refuse any realistic photo: a 50 KB JPEG already fails. Both ends build
their registry here from the same photo limit (the service's `FACE_PHOTO_MAX_BYTES`, which the
photo intake guarantees for the JPEG it encrypts), so the partner accepts every photo the
service accepts, and refuses anything larger.

Django-free: the sandbox partner runs without Django and imports this module.
"""

from __future__ import annotations

from joserfc import jwe
from joserfc.jwk import ECKey, OKPKey, RSAKey, import_key

KEY_ALGORITHMS = ("ECDH-ES+A256KW", "RSA-OAEP-256")
CONTENT_ENCRYPTION = "A256GCM"
# The service's default FACE_PHOTO_MAX_BYTES; the sandbox uses it when not told otherwise.
DEFAULT_FACE_PHOTO_MAX_BYTES = 5 * 1024 * 1024

# Segment limits besides the ciphertext, in base64url characters. A protected header is
# {alg, enc, cty, kid, epk} (~250 for P-256, ~200 for X25519); an encrypted key is 40 for
# A256KW and 683 for RSA-4096; the GCM IV is 16 and the tag 22.
MAX_PROTECTED_HEADER = 1024
MAX_ENCRYPTED_KEY = 1024
MAX_INITIALIZATION_VECTOR = 64
MAX_AUTH_TAG = 64


def load_partner_public_key(pem: str | bytes):
    """The partner's JWE public key (EC, RSA or OKP) from PEM; ValueError for a private key or
    anything else."""
    data = pem.encode() if isinstance(pem, str) else pem
    for key_type in ("EC", "RSA", "OKP"):
        try:
            key = import_key(data, key_type)
        except Exception:  # noqa: S112 - try the next key type
            continue
        if key.is_private:
            raise ValueError("expected the partner's PUBLIC key, got a private key")
        return key
    raise ValueError("not a PEM public key of a supported type (EC, RSA, OKP)")


def key_algorithm(key) -> str:
    """The JWE key management algorithm the contract uses for a partner key of this type."""
    if isinstance(key, RSAKey):
        return "RSA-OAEP-256"
    if isinstance(key, (ECKey, OKPKey)):
        return "ECDH-ES+A256KW"
    raise ValueError(f"unsupported key type {type(key).__name__}")


def base64url_length(size: int) -> int:
    """Characters of unpadded base64url for `size` bytes."""
    return (4 * size + 2) // 3


def face_jwe_registry(*, max_photo_bytes: int, algorithms: tuple[str, ...] = KEY_ALGORITHMS) -> jwe.JWERegistry:
    """A registry allowing `algorithms` + A256GCM, with every size limit set explicitly so that a
    photo of up to `max_photo_bytes` (the ciphertext of GCM is as long as the plaintext) passes
    and nothing larger does. Naming the algorithms also admits RSA-OAEP-256, which joserfc
    refuses by default as "not recommended"."""
    if isinstance(max_photo_bytes, bool) or not isinstance(max_photo_bytes, int) or max_photo_bytes <= 0:
        raise ValueError("max_photo_bytes must be a positive number of bytes")
    registry = jwe.JWERegistry(algorithms=[*algorithms, CONTENT_ENCRYPTION])
    registry.max_protected_header_length = MAX_PROTECTED_HEADER
    registry.max_encrypted_key_length = MAX_ENCRYPTED_KEY
    registry.max_initialization_vector_length = MAX_INITIALIZATION_VECTOR
    registry.max_ciphertext_length = base64url_length(max_photo_bytes)
    registry.max_auth_tag_length = MAX_AUTH_TAG
    return registry


def max_compact_length(max_photo_bytes: int) -> int:
    """The longest compact JWE (with its four dots) a registry for `max_photo_bytes` accepts."""
    return (MAX_PROTECTED_HEADER + MAX_ENCRYPTED_KEY + MAX_INITIALIZATION_VECTOR
            + base64url_length(max_photo_bytes) + MAX_AUTH_TAG + 4)


def check_compact_size(compact: str, registry: jwe.JWERegistry) -> None:
    """The size checks joserfc runs before decrypting (ExceededSizeError, ValueError), run by the
    sender on what it is about to send, so that it never queues a JWE the partner would refuse."""
    value = compact.encode("ascii")
    registry.validate_compact_value_size(value)
    segments = value.split(b".")
    if len(segments) != 5:
        raise ValueError("not a compact JWE")
    header, encrypted_key, iv, ciphertext, tag = segments
    registry.validate_protected_header_size(header)
    registry.validate_encrypted_key_size(encrypted_key)
    registry.validate_initialization_vector_size(iv)
    registry.validate_ciphertext_size(ciphertext)
    registry.validate_auth_tag_size(tag)

