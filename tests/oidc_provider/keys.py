"""The provider's signing key and a key nobody publishes (for the "unknown signing key" fault)."""

from django.conf import settings
from jwcrypto import jwk


def signing_key() -> jwk.JWK:
    return jwk.JWK.from_pem((settings.STATE_DIR / "signing.key").read_bytes())


def unpublished_key() -> jwk.JWK:
    return jwk.JWK.from_pem((settings.STATE_DIR / "unpublished.key").read_bytes())
