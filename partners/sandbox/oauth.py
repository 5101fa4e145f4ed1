"""OAuth2 client credentials (RFC 6749 §4.4) with certificate-bound access tokens (RFC 8705).

``POST /oauth/token`` (form body ``grant_type=client_credentials``; the client authenticates
with HTTP Basic *or* ``client_id``/``client_secret`` form fields) returns
``{"access_token", "token_type": "Bearer", "expires_in"}``. The access token is a JWT signed
ES256 with the sandbox's key: ``iss``, ``sub`` (client id), ``aud`` = ``sandbox-partner``,
``iat``, ``exp``, ``jti`` and ``cnf: {"x5t#S256": thumbprint}`` of the client certificate of
the TLS connection that asked. Errors: 401 ``invalid_client``, 400 ``unsupported_grant_type``
or ``invalid_request``.

A bearer token is accepted only over a connection presenting that same certificate; every
failure is 401 ``{"error": "invalid_token"}`` with ``WWW-Authenticate: Bearer error="invalid_token"``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, unquote_plus

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import ECKey

from partners.devcerts import x5t_s256

from .routing import ApiError, Reply, Request

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path, not a secret
ISSUER = "https://sandbox-partner.invalid"
AUDIENCE = "sandbox-partner"
ALGORITHM = "ES256"
DEFAULT_CLIENTS = {"smarthome": "sandbox-secret"}


class ClientRegistry:
    """The partner's registered API clients: client id -> secret (and, after a rotation's key
    material arrived, the new secret beside the previous one: either authenticates)."""

    def __init__(self, secrets: dict[str, str]):
        self._initial = {client_id: (secret,) for client_id, secret in secrets.items()}
        self._secrets = dict(self._initial)

    def authenticate(self, client_id: str, secret: str) -> bool:
        expected = self._secrets.get(client_id) or ("\0",)
        # Compared even for an unknown client, so timing does not tell which ids exist.
        matches = [hmac.compare_digest(value.encode(), secret.encode()) for value in expected]
        return client_id in self._secrets and any(matches)

    def add_secret(self, client_id: str, secret: str) -> None:
        """A new secret for `client_id`; its newest previous one stays valid too."""
        previous = tuple(value for value in self._secrets.get(client_id, ()) if value != secret)
        self._secrets[client_id] = (secret, *previous[:1])

    def reset(self) -> None:
        self._secrets = dict(self._initial)


class TokenAuthority:
    """Issues and checks the sandbox's certificate-bound JWT access tokens."""

    def __init__(self, signing_key_pem: bytes, ttl_s: int, clock: Callable[[], float] = time.time):
        self._key = ECKey.import_key(signing_key_pem)
        self._kid = self._key.thumbprint()
        self.ttl_s = ttl_s
        self._clock = clock

    def issue(self, *, client_id: str, cert_thumbprint: str) -> str:
        now = self._clock()
        claims = {
            "iss": ISSUER,
            "sub": client_id,
            "aud": AUDIENCE,
            "iat": int(now),
            # Rounded up: the token lives at least the `expires_in` the client is told.
            "exp": math.ceil(now) + self.ttl_s,
            "jti": str(uuid.uuid4()),
            "cnf": {"x5t#S256": cert_thumbprint},
        }
        return jwt.encode({"alg": ALGORITHM, "kid": self._kid}, claims, self._key, algorithms=[ALGORITHM])

    def verify(self, token: str, *, cert_thumbprint: str, treat_as_expired: bool = False) -> dict:
        """The claims of a valid token presented with `cert_thumbprint`; ApiError 401 otherwise."""
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM]).claims
            jwt.JWTClaimsRegistry(
                now=lambda: int(self._clock()),
                iss={"essential": True, "value": ISSUER},
                aud={"essential": True, "value": AUDIENCE},
                sub={"essential": True},
                exp={"essential": True},
            ).validate(claims)
        except ExpiredTokenError:
            raise _invalid_token("token expired") from None
        except (JoseError, ValueError):
            raise _invalid_token("token malformed, wrongly signed or not for this audience") from None
        if treat_as_expired:
            raise _invalid_token("token expired")
        cnf = claims.get("cnf")
        bound_to = str(cnf.get("x5t#S256", "")) if isinstance(cnf, dict) else ""
        if not hmac.compare_digest(bound_to.encode(), cert_thumbprint.encode()):
            raise _invalid_token("token is bound to another client certificate")
        return claims


def token_endpoint(request: Request, clients: ClientRegistry, authority: TokenAuthority) -> Reply:
    """Answer ``POST /oauth/token``; see the module docstring for the contract."""
    if request.method != "POST":
        raise ApiError(405, "invalid_request", "use POST", {"Allow": "POST"})
    content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise ApiError(400, "invalid_request", "body must be application/x-www-form-urlencoded")
    form = _single_valued_form(request.body)
    client_id, secret, used_basic = _client_credentials(request, form)
    if not clients.authenticate(client_id, secret):
        challenge = {"WWW-Authenticate": 'Basic realm="sandbox-partner"'} if used_basic else {}
        raise ApiError(401, "invalid_client", "unknown client or wrong secret", challenge)
    grant_type = form.get("grant_type")
    if not grant_type:
        raise ApiError(400, "invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        raise ApiError(400, "unsupported_grant_type")
    token = authority.issue(client_id=client_id, cert_thumbprint=x5t_s256(request.client_cert_der))
    return Reply(
        200,
        {"access_token": token, "token_type": "Bearer", "expires_in": authority.ttl_s},
        {"Pragma": "no-cache"},
    )


def bearer_client(request: Request, authority: TokenAuthority, *, treat_as_expired: bool = False) -> str:
    """The client id of the request's valid bearer token; ApiError 401 ``invalid_token`` otherwise."""
    scheme, _, token = (request.header("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _invalid_token("bearer token required")
    claims = authority.verify(
        token.strip(), cert_thumbprint=x5t_s256(request.client_cert_der), treat_as_expired=treat_as_expired
    )
    return claims["sub"]


def _single_valued_form(body: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid_request", "malformed form body") from None
    if any(len(values) > 1 for values in fields.values()):
        raise ApiError(400, "invalid_request", "repeated parameter")
    return {name: values[0] for name, values in fields.items()}


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str, bool]:
    """(client id, secret, whether HTTP Basic was used); exactly one method is allowed."""
    scheme, _, encoded = (request.header("Authorization") or "").partition(" ")
    in_form = "client_id" in form or "client_secret" in form
    if scheme.lower() == "basic":
        if in_form:
            raise ApiError(400, "invalid_request", "use one client authentication method")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(
                401,
                "invalid_client",
                "malformed Basic credentials",
                {"WWW-Authenticate": 'Basic realm="sandbox-partner"'},
            ) from None
        client_id, _, secret = decoded.partition(":")
        # RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding.
        return unquote_plus(client_id), unquote_plus(secret), True
    if in_form:
        return form.get("client_id", ""), form.get("client_secret", ""), False
    raise ApiError(401, "invalid_client", "client authentication required")


def _invalid_token(description: str) -> ApiError:
    return ApiError(
        401,
        "invalid_token",
        description,
        {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'},
    )
