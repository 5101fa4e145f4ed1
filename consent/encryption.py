"""End-to-end encryption of face photos to the partner's public key (JWE, joserfc).

EC keys (P-256 / X25519) use ECDH-ES+A256KW; RSA keys use RSA-OAEP-256 (joserfc refuses it
unless named in an explicit registry). Content encryption is A256GCM either way. Only the
partner's private key opens the result: the service never keeps a copy it could decrypt.
"""

from joserfc import jwe
from joserfc.jwk import ECKey, OKPKey, RSAKey, import_key

_RSA_REGISTRY = jwe.JWERegistry(algorithms=["RSA-OAEP-256", "A256GCM"])


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


def encrypt_for_partner(plaintext: bytes, *, public_key_pem: str | bytes, key_id: str = "") -> str:
    """Compact JWE of `plaintext` that only the holder of the partner's private key can read."""
    key = load_partner_public_key(public_key_pem)
    header = {"enc": "A256GCM", "cty": "image/jpeg"}
    if key_id:
        header["kid"] = key_id
    if isinstance(key, RSAKey):
        return jwe.encrypt_compact({**header, "alg": "RSA-OAEP-256"}, plaintext, key, registry=_RSA_REGISTRY)
    if isinstance(key, (ECKey, OKPKey)):
        return jwe.encrypt_compact({**header, "alg": "ECDH-ES+A256KW"}, plaintext, key)
    raise ValueError(f"unsupported key type {type(key).__name__}")
