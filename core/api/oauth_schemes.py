"""The OAuth2 security schemes of the OpenAPI schema, and the scopes each operation requires.

Three kinds of clients hold tokens (core/auth/oauth_scopes.py decides which may ask for what):
- `residentApp`: the public mobile app, authorization code flow with PKCE (S256 only), the
  resident scopes;
- `serviceClient`: confidential internal clients (OAUTH_SERVICE_CLIENTS), e.g. a compliance
  officer's exporter (authorization code: the token carries the officer) or a gateway
  introspecting tokens (client credentials);
- `partnerClient`: the partner platform, client credentials through the mTLS listener, the token
  bound to its certificate (partners/authentication.py declares that scheme).

An operation's security requirement comes from its view: a resident API view's
`required_scopes[METHOD]` lists alternatives (any one of them), a permission class with
`required_scopes` (core.api.permissions.scope_required) needs all of them together, and a view
that names no scope takes any token of its scheme (`oauth2_scheme`, default `residentApp`).
Each requirement also names `bearerToken`: how the token travels (RFC 6750), for tools that do
not read OAuth2 schemes (schemathesis' ignored_auth check among them).
"""

from django.urls import NoReverseMatch, reverse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.settings import spectacular_settings

from core.auth.oauth_scopes import RESIDENT_SCOPES, SERVICE_SCOPES, describe

RESIDENT_APP = "residentApp"
SERVICE_CLIENT = "serviceClient"
BEARER = "bearerToken"
BEARER_DEFINITION = {
    "type": "http", "scheme": "bearer",
    "description": "The access token of the operation's OAuth2 scheme, in `Authorization: Bearer` (RFC 6750)",
}


def scope_requirements(scheme: str, view, method: str) -> list[dict]:
    """OpenAPI security requirements (alternatives) of `view` for `method` under `scheme`."""
    per_method = getattr(view, "required_scopes", None)
    if isinstance(per_method, dict):
        alternatives = [[scope] for scope in per_method.get(method, ())] or [[]]
    else:
        alternatives = [[scope for permission in view.get_permissions()
                         for scope in getattr(permission, "required_scopes", ())]]
    return [{scheme: scopes, BEARER: []} for scopes in alternatives]


def _reverse_served(name: str) -> str:
    """`name` in this process's URL map or else in the first of the schema's URL maps that has it
    (the partner pool, which has no authorisation endpoint, still checks the schema at start)."""
    for urlconf in (None, *spectacular_settings.SERVE_URLCONF):
        try:
            return reverse(name, urlconf=urlconf)
        except NoReverseMatch:
            continue
    raise NoReverseMatch(name)


def oauth_urls() -> dict:
    return {"authorizationUrl": _reverse_served("oauth2_provider:authorize"),
            "tokenUrl": _reverse_served("oauth2_provider:token")}


def flows_scopes(scopes: dict) -> dict:
    return {scope: describe(scope) for scope in scopes}


class OAuth2Schemes(OpenApiAuthenticationExtension):
    """django-oauth-toolkit's bearer tokens (replaces drf-spectacular's generic `oauth2` scheme)."""

    target_class = "oauth2_provider.contrib.rest_framework.OAuth2Authentication"
    name = [RESIDENT_APP, SERVICE_CLIENT]
    priority = 1

    def get_security_requirement(self, auto_schema):
        view = auto_schema.view
        return scope_requirements(getattr(view, "oauth2_scheme", RESIDENT_APP), view, auto_schema.method)

    def get_security_definition(self, auto_schema):
        urls = oauth_urls()
        resident = {
            "type": "oauth2",
            "description": "The residents' mobile app (public client): authorization code with PKCE, "
                           "code_challenge_method S256 only. Access tokens live OAUTH_ACCESS_TOKEN_TTL_S; refresh "
                           "tokens rotate on every use.",
            "flows": {"authorizationCode": {**urls, "refreshUrl": urls["tokenUrl"],
                                            "scopes": flows_scopes(RESIDENT_SCOPES)}},
        }
        service = {
            "type": "oauth2",
            "description": "Confidential internal clients listed in OAUTH_SERVICE_CLIENTS, with the scopes listed "
                           "there. The audit export needs a token issued to a compliance officer (authorization "
                           "code); introspection takes client credentials.",
            "flows": {
                "authorizationCode": {**urls, "scopes": flows_scopes(SERVICE_SCOPES)},
                "clientCredentials": {"tokenUrl": urls["tokenUrl"], "scopes": flows_scopes(SERVICE_SCOPES)},
            },
        }
        return [resident, service]


def add_bearer_scheme(result, generator, request, public):
    """drf-spectacular postprocessing hook: the `bearerToken` scheme every OAuth2 requirement names
    (declared once, whichever authentication classes name it)."""
    result.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER] = BEARER_DEFINITION
    return result


class BudgetedOAuth2Schemes(OAuth2Schemes):
    """The same schemes for the resident API's authentication with its budget of unknown tokens
    (drf-spectacular matches an extension to one class, not to its subclasses)."""

    target_class = "core.api.authentication.BudgetedOAuth2Authentication"
