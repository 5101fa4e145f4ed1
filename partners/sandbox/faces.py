"""Decryption of face photos sent to the partner as JWE (compact serialization).

The key is chosen by the JWE header ``alg``: ``ECDH-ES+A256KW`` uses the partner's EC P-256
key (``partner-jwe.key``), ``RSA-OAEP-256`` its RSA key (``partner-jwe-rsa.key``); content
encryption must be ``A256GCM``. Anything else, or anything that fails to decrypt, is
`Undecryptable`.
"""

from __future__ import annotations

import base64
import json

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

CONTENT_ENCRYPTION = "A256GCM"


class Undecryptable(Exception):
    pass


class FaceKeys:
    """The partner's private keys that face photos are encrypted to."""

    def __init__(self, ec_key_pem: bytes, rsa_key_pem: bytes):
        self._keys = {
            "ECDH-ES+A256KW": ECKey.import_key(ec_key_pem),
            "RSA-OAEP-256": RSAKey.import_key(rsa_key_pem),
        }

    def decrypt(self, compact: str) -> bytes:
        """The plaintext of a compact JWE; raises `Undecryptable`."""
        header = _protected_header(compact)
        alg = header.get("alg")
        key = self._keys.get(alg)
        if key is None or header.get("enc") != CONTENT_ENCRYPTION:
            raise Undecryptable(f"unsupported alg/enc {alg!r}/{header.get('enc')!r}")
        # An explicit registry: joserfc refuses RSA-OAEP-256 by default as "not recommended".
        registry = jwe.JWERegistry(algorithms=[alg, CONTENT_ENCRYPTION])
        try:
            return jwe.decrypt_compact(compact, key, registry=registry).plaintext or b""
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
