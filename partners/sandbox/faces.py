"""Decryption of face photos sent to the partner as JWE (compact serialization).

The key is chosen by the JWE header ``alg``: ``ECDH-ES+A256KW`` uses the partner's EC P-256
key (``partner-jwe.key``), ``RSA-OAEP-256`` its RSA key (``partner-jwe-rsa.key``); content
encryption must be ``A256GCM``. Anything else, or anything that fails to decrypt, is
`Undecryptable`. Size limits are those of `partners.face_jwe` for the photo limit the sandbox
runs with (``--face-photo-max-bytes``, by default the service's FACE_PHOTO_MAX_BYTES), so it
accepts every photo the service accepts.
"""

from __future__ import annotations

import base64
import json

from joserfc import jwe
from joserfc.errors import ExceededSizeError, JoseError
from joserfc.jwk import ECKey, RSAKey

from partners.face_jwe import CONTENT_ENCRYPTION, DEFAULT_FACE_PHOTO_MAX_BYTES, face_jwe_registry


class Undecryptable(Exception):
    pass


class PhotoTooLarge(Undecryptable):
    """Larger than the photo limit: the service would never have sent it."""


class FaceKeys:
    """The partner's private keys that face photos are encrypted to."""

    def __init__(self, ec_key_pem: bytes, rsa_key_pem: bytes, *,
                 max_photo_bytes: int = DEFAULT_FACE_PHOTO_MAX_BYTES):
        self._keys = {
            "ECDH-ES+A256KW": ECKey.import_key(ec_key_pem),
            "RSA-OAEP-256": RSAKey.import_key(rsa_key_pem),
        }
        self.max_photo_bytes = max_photo_bytes
        # One registry per algorithm: a JWE is opened only with the key its header names.
        self._registries = {
            alg: face_jwe_registry(max_photo_bytes=max_photo_bytes, algorithms=(alg,)) for alg in self._keys
        }

    def decrypt(self, compact: str) -> bytes:
        """The plaintext of a compact JWE; raises `Undecryptable`."""
        header = _protected_header(compact)
        alg = header.get("alg")
        key = self._keys.get(alg)
        if key is None or header.get("enc") != CONTENT_ENCRYPTION:
            raise Undecryptable(f"unsupported alg/enc {alg!r}/{header.get('enc')!r}")
        try:
            return jwe.decrypt_compact(compact, key, registry=self._registries[alg]).plaintext or b""
        except ExceededSizeError:
            raise PhotoTooLarge(f"larger than a photo of {self.max_photo_bytes} bytes") from None
        except (JoseError, ValueError) as error:
            raise Undecryptable(type(error).__name__) from None


def _protected_header(compact: str) -> dict:
    segments = compact.split(".")
    if len(segments) != 5:
        raise Undecryptable("not a compact JWE")
    try:
        header = json.loads(base64.urlsafe_b64decode(segments[0] + "=" * (-len(segments[0]) % 4)))
    except ValueError:
        raise Undecryptable("malformed protected header") from None
    if not isinstance(header, dict):
        raise Undecryptable("malformed protected header")
    return header
