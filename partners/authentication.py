"""Who may call the partner API: mTLS certificate, IP allowlist, certificate-bound OAuth2 token.

A partner call is accepted only when, in this order:
1. the TLS terminator forwarded a verified client certificate (core.http.mtls) - else 401;
2. that certificate is the one registered in the partner's current credentials (fingerprint) -
   else 401; the lookup is cached per certificate, so step 3 needs no database work;
3. the caller's IP is in the partner's `allowed_cidrs` - else 403, before any further work;
4. the bearer token is a valid client-credentials token of an OAuth2 application bound to the
   same partner (PartnerApplication) - else 401;
5. the token was issued to this very certificate (RFC 8705 `x5t#S256`, PartnerTokenBinding,
   recorded by `token_issued` when /o/token/ was called through the mTLS listener) - else 401;
6. the partner is active and not suspended - else 403.

Scopes are checked by the views (`partner_scope_required`). Every refusal above, and a missing
scope, is counted (audit.refusals: one row per minute, source and reason, however many calls).
"""

import hashlib
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext_lazy
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from oauth2_provider.models import get_access_token_model
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from audit.refusals import RefusalReason, refusal_count
from core.api.oauth_schemes import flows_scopes, oauth_urls, scope_requirements
from core.api.permissions import MissingScope, scope_required
from core.auth.oauth_scopes import PARTNER_SCOPES
from core.cache.shared import OUTAGE_ERRORS, shared_cache_unavailable
from core.cache.versioned import VersionedCache, refresh
from core.http.client_ip import address_in, client_ip
from partners.models import Partner, PartnerApplication, PartnerCredentials, PartnerTokenBinding

CERT_CACHE_TTL_S = 60  # shared cache
LOCAL_CERT_CACHE_TTL_S = 5  # and, in front of it, per process
_CERT_CACHE_KEY = "partner-api:cert:{}"
_local_certs: dict[str, tuple[float, dict]] = {}
partner_tokens = VersionedCache("tokens")
PARTNER_CLIENT = "partnerClient"  # the OpenAPI security scheme


class PartnerNotAuthenticated(exceptions.AuthenticationFailed):
    problem_code = "partner-unauthenticated"


class IpNotAllowed(exceptions.PermissionDenied):
    problem_code = "ip-not-allowed"
    default_detail = gettext_lazy("Calls from this address are not allowed for this partner.")


class PartnerSuspended(exceptions.PermissionDenied):
    problem_code = "partner-suspended"
    default_detail = gettext_lazy("The partner's access is suspended.")


@dataclass(frozen=True)
class PartnerPrincipal:
    """request.user of a partner call (there is no Django user behind client credentials)."""

    partner: Partner

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    @property
    def partner_id(self) -> int:
        return self.partner.pk

    @property
    def pk(self):
        return f"partner:{self.partner.pk}"


def _cert_entry(fingerprint: str) -> dict | None:
    """{partner_id, cidrs} of the current credentials registered with this certificate (cached)."""
    local = _local_certs.get(fingerprint)
    if local is not None and local[0] > time.monotonic():
        return local[1] or None
    key = _CERT_CACHE_KEY.format(fingerprint)
    try:
        entry = cache.get(key)
        shared = True
    except OUTAGE_ERRORS as error:  # the shared cache only saves a query here: ask the database
        shared_cache_unavailable("partner_auth", error)
        entry, shared = None, False
    if entry is None:
        row = (
            PartnerCredentials.objects.current()
            .filter(client_cert_fingerprint__iexact=fingerprint)
            .values("partner_id", "allowed_cidrs")
            .first()
        )
        entry = {"partner_id": row["partner_id"], "cidrs": row["allowed_cidrs"]} if row else {}
        if shared:
            cache.set(key, entry, CERT_CACHE_TTL_S)
    _local_certs[fingerprint] = (time.monotonic() + LOCAL_CERT_CACHE_TTL_S, entry)
    return entry or None


def forget_certificate(fingerprint: str) -> None:
    """Drop the cached lookup (after a rotation, a suspension or in tests)."""
    if fingerprint:
        _local_certs.pop(fingerprint.lower(), None)
        cache.delete(_CERT_CACHE_KEY.format(fingerprint.lower()))


def forget_partner_certificates(*, partner_id: int) -> None:
    """Forget the cached lookups of every certificate the partner ever registered (after its
    credentials changed: a rotation may move or drop a certificate; other processes: within
    LOCAL_CERT_CACHE_TTL_S)."""
    fingerprints = PartnerCredentials.objects.filter(partner_id=partner_id).values_list(
        "client_cert_fingerprint", flat=True
    )
    for value in fingerprints:
        forget_certificate(value)


def _load_token(checksum: str):
    return (
        get_access_token_model()
        .objects.select_related("application__partner_binding__partner", "partner_cert_binding")
        .filter(token_checksum=checksum)
        .first()
    )


def _token(checksum: str):
    """The access token with its application, partner binding, partner and certificate binding.

    Known tokens are kept per process until a change tagged `tokens` commits (a partner's token
    revoked or expired early, a binding, application or partner changed - suspension included:
    core.cache.versioned); expiry is judged by the caller at each request. Unknown tokens are not
    kept: a token issued a moment ago must be found."""
    version = partner_tokens.current_version()
    token = partner_tokens.get(checksum, version, lambda: _load_token(checksum))
    if token is None and version is not None:
        partner_tokens.forget(checksum)
    return token


def _bearer(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _refused(request, reason: RefusalReason, error: Exception, partner_id: int | None = None) -> Exception:
    refusal_count(reason=reason, partner_id=partner_id, source_ip=client_ip(request._request))
    return error


def _token_refusal(token, partner_id: int, certificate) -> tuple[RefusalReason, Exception] | None:
    """Why the token does not let this certificate's partner in (steps 4-6), or None."""
    if token is None or token.is_expired() or token.application is None:
        return RefusalReason.INVALID_TOKEN, PartnerNotAuthenticated("The token is invalid or expired.")
    binding = getattr(token.application, "partner_binding", None)
    if binding is None or binding.partner_id != partner_id:
        return (RefusalReason.TOKEN_OF_ANOTHER_PARTNER,
                PartnerNotAuthenticated("The token does not belong to this certificate's partner."))
    cert_binding = getattr(token, "partner_cert_binding", None)
    if cert_binding is None or cert_binding.x5t_s256 != certificate.x5t_s256:
        return (RefusalReason.TOKEN_NOT_BOUND,
                PartnerNotAuthenticated("The token is not bound to this client certificate."))
    if not binding.partner.is_usable:
        return RefusalReason.PARTNER_SUSPENDED, PartnerSuspended()
    return None


class PartnerAuthentication(BaseAuthentication):
    """DRF authentication of the partner API (see the module docstring for the checks)."""

    def authenticate(self, request):
        certificate = getattr(request._request, "client_certificate", None)
        if certificate is None:
            raise _refused(request, RefusalReason.NO_CERTIFICATE,
                           PartnerNotAuthenticated("A verified client certificate is required."))
        entry = _cert_entry(certificate.fingerprint_sha256)
        if entry is None:
            raise _refused(request, RefusalReason.UNKNOWN_CERTIFICATE,
                           PartnerNotAuthenticated("The client certificate is not registered for any partner."))
        partner_id = entry["partner_id"]
        if not address_in(client_ip(request._request), entry["cidrs"]):
            raise _refused(request, RefusalReason.IP_NOT_ALLOWED, IpNotAllowed(), partner_id)
        raw = _bearer(request._request)
        if raw is None:
            raise _refused(request, RefusalReason.NO_TOKEN, PartnerNotAuthenticated("A bearer token is required."),
                           partner_id)
        checksum = hashlib.sha256(raw.encode()).hexdigest()
        token = _token(checksum)
        refusal = _token_refusal(token, partner_id, certificate)
        if refusal is not None and refresh():  # refused on an assumed batch: read the log, check again
            token = _token(checksum)
            refusal = _token_refusal(token, partner_id, certificate)
        if refusal is not None:
            raise _refused(request, *refusal, partner_id)
        partner = token.application.partner_binding.partner
        request._request.partner = partner
        return PartnerPrincipal(partner=partner), token

    def authenticate_header(self, request):
        return 'Bearer realm="partner"'


class PartnerAuthenticationScheme(OpenApiAuthenticationExtension):
    """The partner API's OAuth2 scheme in the OpenAPI schema (scopes: partner_scope_required)."""

    target_class = "partners.authentication.PartnerAuthentication"
    name = PARTNER_CLIENT

    def get_security_requirement(self, auto_schema):
        return scope_requirements(PARTNER_CLIENT, auto_schema.view, auto_schema.method)

    def get_security_definition(self, auto_schema):
        return {
            "type": "oauth2",
            "description": "The partner platform: client credentials at the token endpoint through the mTLS "
                           "listener; the token is bound (RFC 8705) to the client certificate it was requested "
                           "with. Every call comes through the mTLS listener with that certificate, from an "
                           "address in the partner's allowlist.",
            "flows": {"clientCredentials": {"tokenUrl": oauth_urls()["tokenUrl"],
                                            "scopes": flows_scopes(PARTNER_SCOPES)}},
        }


class IsPartner(BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, PartnerPrincipal)


def partner_scope_required(*scopes: str) -> type[BasePermission]:
    """`core.api.permissions.scope_required` for the partner API: a missing scope is also counted
    as a refused call (audit.refusals)."""
    base = scope_required(*scopes)

    class HasPartnerScopes(base):
        def has_permission(self, request, view):
            try:
                return super().has_permission(request, view)
            except MissingScope as missing:
                partner = getattr(request.user, "partner", None)
                raise _refused(request, RefusalReason.MISSING_SCOPE, missing, partner.pk if partner else None) from None

    HasPartnerScopes.__name__ = base.__name__
    return HasPartnerScopes


def partner_scopes(application) -> list[str]:
    """OAUTH_SCOPE_RESOLVERS entry: the partner scopes for an application bound to a usable partner."""
    binding = PartnerApplication.objects.select_related("partner").filter(application=application).first()
    if binding is None or not binding.partner.is_usable:
        return []
    return list(PARTNER_SCOPES)


def token_issued(sender, request, token, **kwargs) -> None:
    """`app_authorized` receiver: bind a partner's new token to the certificate it was requested with.

    Without a verified certificate (the token endpoint was not reached through the mTLS
    listener) no binding is stored, so the partner API refuses the token.
    """
    certificate = getattr(request, "client_certificate", None)
    if certificate is None or token.application_id is None:
        return
    if not PartnerApplication.objects.filter(application_id=token.application_id).exists():
        return
    PartnerTokenBinding.objects.update_or_create(access_token=token, defaults={"x5t_s256": certificate.x5t_s256})


def partner_tokens_revoke(*, partner_id: int) -> int:
    """Expire every access token of the partner's OAuth2 applications; returns how many."""
    now = timezone.now()
    tokens = get_access_token_model().objects.filter(
        application__partner_binding__partner_id=partner_id, expires__gt=now
    )
    return tokens.update(expires=now)
