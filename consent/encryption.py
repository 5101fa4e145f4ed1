"""End-to-end encryption of face photos to the partner's public key (JWE, joserfc).

EC keys (P-256 / X25519) use ECDH-ES+A256KW; RSA keys use RSA-OAEP-256. Content encryption is
A256GCM either way. Only the partner's private key opens the result: the service never keeps a
copy it could decrypt. The registry and its size limits come from `partners.face_jwe`, derived
from FACE_PHOTO_MAX_BYTES exactly as the partner's side derives them, and every JWE is checked
against them before it is queued.
"""

from django.conf import settings
from joserfc import jwe
from joserfc.jwk import ECKey, OKPKey, RSAKey, import_key

from partners.face_jwe import check_compact_size, face_jwe_registry


def load_partner_public_key(pem: str | bytes):
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


def encrypt_for_partner(plaintext: bytes, *, public_key_pem: str | bytes, key_id: str = "",
                        max_photo_bytes: int | None = None) -> str:
    """Compact JWE of `plaintext` that only the holder of the partner's private key can read.

    `max_photo_bytes` (default FACE_PHOTO_MAX_BYTES) bounds the plaintext: ValueError above it,
    and joserfc's ExceededSizeError if the JWE would not pass the partner's size checks."""
    limit = settings.FACE_PHOTO_MAX_BYTES if max_photo_bytes is None else max_photo_bytes
    if len(plaintext) > limit:
        raise ValueError(f"the photo is {len(plaintext)} bytes; the partner accepts at most {limit}")
    key = load_partner_public_key(public_key_pem)
    header = {"enc": "A256GCM", "cty": "image/jpeg"}
    if key_id:
        header["kid"] = key_id
    if isinstance(key, RSAKey):
        header["alg"] = "RSA-OAEP-256"
    elif isinstance(key, (ECKey, OKPKey)):
        header["alg"] = "ECDH-ES+A256KW"
    else:
        raise ValueError(f"unsupported key type {type(key).__name__}")
    registry = face_jwe_registry(max_photo_bytes=limit)
    compact = jwe.encrypt_compact(header, plaintext, key, registry=registry)
    check_compact_size(compact, registry)
    return compact
