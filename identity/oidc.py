"""The residents' OpenID Connect provider (Keycloak in production), through Authlib's Django client.

Authlib builds the authorisation request (code flow, PKCE S256, `state` and `nonce` kept in the
session), exchanges the code (client secret, code verifier) and validates the ID token:
signature against the provider's JWKS, `iss` (the configured issuer), `aud` (our client id),
`exp`/`iat` (IDENTITY_OIDC_CLOCK_SKEW_S of leeway), `nonce`, `azp` and `at_hash`.

This module adds what Authlib leaves to the application:
- the discovery document and the JWKS are cached in the shared cache (every process) for
  IDENTITY_OIDC_METADATA_TTL_S; a token signed by an unknown key id makes one JWKS refetch,
  at most every IDENTITY_OIDC_JWKS_MIN_REFRESH_S (key rotation works; a stream of forged key
  ids costs no provider round trips);
- the discovery document must name the configured issuer (mix-up protection), and only
  asymmetric signature algorithms are accepted;
- HTTP calls use IDENTITY_OIDC_CA_FILE (an internal CA) and IDENTITY_OIDC_TIMEOUT_S;
- `verify_logout_token` checks an OIDC Back-Channel Logout token.
"""

import time

from authlib.integrations.django_client import DjangoOAuth2App, OAuth
from django.conf import settings
from django.core.cache import cache
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_CLIENT_NAME = "residents"


class ProviderError(Exception):
    """The provider could not be reached or answered something we refuse."""


def configured() -> bool:
    return bool(settings.IDENTITY_OIDC_ISSUER and settings.IDENTITY_OIDC_CLIENT_ID)


def _cache_key(kind: str) -> str:
    return f"identity:oidc:{kind}:{settings.IDENTITY_OIDC_ISSUER}"


class ProviderApp(DjangoOAuth2App):
    """Authlib's Django OAuth2/OIDC client with shared, expiring caches of metadata and keys."""

    def load_server_metadata(self):
        metadata = cache.get(_cache_key("metadata"))
        if metadata is None:
            with self._get_session() as session:
                response = session.request("GET", self._server_metadata_url, withhold_token=True)
                response.raise_for_status()
                metadata = response.json()
            if metadata.get("issuer", "").rstrip("/") != settings.IDENTITY_OIDC_ISSUER:
                raise ProviderError("the discovery document names another issuer")
            offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
            metadata["id_token_signing_alg_values_supported"] = [a for a in offered if a in ASYMMETRIC_ALGORITHMS]
            metadata.pop("jwks", None)
            cache.set(_cache_key("metadata"), metadata, settings.IDENTITY_OIDC_METADATA_TTL_S)
        self.server_metadata = {**metadata, "_loaded_at": time.time()}
        return self.server_metadata

    def fetch_jwk_set(self, force=False):
        cached = cache.get(_cache_key("jwks"))
        if cached is not None:
            jwks, fetched_at = cached
            recent = time.time() - fetched_at < settings.IDENTITY_OIDC_JWKS_MIN_REFRESH_S
            if not force or recent:
                return jwks
        uri = self.load_server_metadata().get("jwks_uri")
        if not uri:
            raise ProviderError("the discovery document has no jwks_uri")
        with self._get_session() as session:
            response = session.request("GET", uri, withhold_token=True)
            response.raise_for_status()
            jwks = response.json()
        cache.set(_cache_key("jwks"), (jwks, time.time()), settings.IDENTITY_OIDC_METADATA_TTL_S)
        return jwks


class _Registry(OAuth):
    oauth2_client_cls = ProviderApp


def provider():
    """The Authlib client of the configured provider (built from the current settings)."""
    issuer = settings.IDENTITY_OIDC_ISSUER
    scopes = settings.IDENTITY_OIDC_SCOPES.split()
    if "openid" not in scopes:
        scopes.insert(0, "openid")
    registry = _Registry()
    registry.register(
        _CLIENT_NAME,
        client_id=settings.IDENTITY_OIDC_CLIENT_ID,
        client_secret=settings.IDENTITY_OIDC_CLIENT_SECRET or None,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": " ".join(scopes),
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": (
                "client_secret_basic" if settings.IDENTITY_OIDC_CLIENT_SECRET else "none"
            ),
            "verify": settings.IDENTITY_OIDC_CA_FILE or True,
            "default_timeout": settings.IDENTITY_OIDC_TIMEOUT_S,
            "trust_env": False,
        },
    )
    return registry.create_client(_CLIENT_NAME)


def id_token_claims_options() -> dict:
    return {
        "iss": {"essential": True, "value": settings.IDENTITY_OIDC_ISSUER},
        "aud": {"essential": True, "value": settings.IDENTITY_OIDC_CLIENT_ID},
        "exp": {"essential": True},
        "iat": {"essential": True},
        "sub": {"essential": True},
    }


def audience_includes_us(claims) -> bool:
    audience = claims.get("aud")
    audience = audience if isinstance(audience, list) else [audience]
    return settings.IDENTITY_OIDC_CLIENT_ID in audience


def _decode(token: str, app: ProviderApp):
    algorithms = app.load_server_metadata()["id_token_signing_alg_values_supported"] or ["RS256"]
    registry = JWSRegistry(algorithms=algorithms)
    try:
        return jwt.decode(token, KeySet.import_key_set(app.fetch_jwk_set()), registry=registry)
    except JoseError:
        # perhaps a rotated key: refetch once (rate limited), then decide
        return jwt.decode(token, KeySet.import_key_set(app.fetch_jwk_set(force=True)), registry=registry)


def verify_logout_token(token: str) -> dict:
    """The claims of a valid Back-Channel Logout token, or raise ProviderError.

    Checks (OIDC Back-Channel Logout 1.0, 2.6): signature by a provider key, `iss` is the
    provider, `aud` has our client id, `iat` present and `exp` (when present) not passed (with
    the clock skew), the back-channel logout event present, `sub` or `sid` present, no `nonce`.
    The caller refuses a replayed `jti`.
    """
    app = provider()
    try:
        decoded = _decode(token, app)
    except (JoseError, ValueError) as exc:
        raise ProviderError(f"logout token: {type(exc).__name__}") from exc
    claims = decoded.claims
    skew = settings.IDENTITY_OIDC_CLOCK_SKEW_S
    now = time.time()
    if claims.get("iss", "").rstrip("/") != settings.IDENTITY_OIDC_ISSUER:
        raise ProviderError("logout token: iss")
    if not audience_includes_us(claims):
        raise ProviderError("logout token: aud")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or iat > now + skew:
        raise ProviderError("logout token: iat")
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, int | float) or exp < now - skew):
        raise ProviderError("logout token: exp")
    events = claims.get("events")
    if not isinstance(events, dict) or BACKCHANNEL_LOGOUT_EVENT not in events:
        raise ProviderError("logout token: events")
    if not (claims.get("sub") or claims.get("sid")):
        raise ProviderError("logout token: sub/sid")
    if "nonce" in claims:
        raise ProviderError("logout token: nonce")
    if not claims.get("jti"):
        raise ProviderError("logout token: jti")
    return claims
