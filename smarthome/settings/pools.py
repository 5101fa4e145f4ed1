"""The web worker pools: which URLs and which middleware each one serves.

Two gunicorn pools, each behind its own nginx listener, so public load cannot occupy the workers
that decide for barriers (docs/architecture.md "Two worker pools"):

- `public` (`smarthome.wsgi`): the resident API, OAuth2, the admin and every browser page; its
  nginx listener limits each client address (core/nginx.py). `/partner/` is not routed here (404).
- `partner` (`smarthome.wsgi_partner`): the partner API, the token endpoint partners call
  through the mTLS listener (certificate-bound tokens), probes and metrics - and only the
  middleware a machine request needs: the proxy hop, request id, metrics, access log, body limit,
  client certificate, security headers. No sessions, CSRF, login, OTP, messages, framing headers,
  auditlog actor or axes lockout: partners prove who they are with a certificate and a bound
  bearer token, never with a cookie.

Plain data (no Django import): settings/base.py picks the pool named by SMARTHOME_POOL, and the
tests build a partner pool from the same table.
"""

from dataclasses import dataclass

# Every request of either pool passes these first, in this order.
SHARED_MIDDLEWARE = (
    # First: forwarded identity headers survive only over the authenticated proxy hop.
    "core.http.proxy.TrustedProxyMiddleware",
    "core.http.middleware.RequestIdMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "core.http.middleware.AccessLogMiddleware",
    "core.http.middleware.BodySizeLimitMiddleware",
    "core.http.middleware.SharedCacheOutageMiddleware",
    "core.http.mtls.ClientCertificateMiddleware",
    "django.middleware.security.SecurityMiddleware",
)
# Closes both stacks: counts the response by view and status.
METRICS_AFTER = "django_prometheus.middleware.PrometheusAfterMiddleware"


@dataclass(frozen=True)
class Pool:
    name: str
    urlconf: str
    wsgi_application: str
    middleware: tuple[str, ...]
    # Django's checks that ask for browser middleware in every process; a pool that serves no
    # browser page (no admin URL, no form, no cookie) silences them - and only them.
    silenced_checks: tuple[str, ...] = ()


PUBLIC = Pool(
    name="public",
    urlconf="smarthome.urls",
    wsgi_application="smarthome.wsgi.application",
    middleware=(
        *SHARED_MIDDLEWARE,
        "csp.middleware.CSPMiddleware",  # the browser pages' Content-Security-Policy (CONTENT_SECURITY_POLICY)
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.locale.LocaleMiddleware",  # Accept-Language or the language cookie; Russian by default
        "core.portal.timezone.PortalTimeZoneMiddleware",  # admin pages in PORTAL_TIME_ZONE
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django_otp.middleware.OTPMiddleware",
        "identity.middleware.SessionCutoffMiddleware",  # sessions revoked from the admin or the provider end
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "core.http.middleware.AuditlogMiddleware",  # auditlog's, with the trusted client address
        "axes.middleware.AxesMiddleware",
        METRICS_AFTER,
    ),
)
PARTNER = Pool(
    name="partner",
    urlconf="smarthome.partner_urls",
    wsgi_application="smarthome.wsgi_partner.application",
    middleware=(
        *SHARED_MIDDLEWARE,
        "core.http.language.AcceptLanguageMiddleware",  # problem documents in the caller's language
        "django.middleware.common.CommonMiddleware",
        METRICS_AFTER,
    ),
    silenced_checks=(
        "admin.E408", "admin.E409", "admin.E410",  # the admin's middleware: no admin URL here
        "axes.W002",  # login lockout: nobody logs in here
        "security.W002", "security.W003",  # framing and CSRF: no page, no form, no cookie here
    ),
)
POOLS = {pool.name: pool for pool in (PUBLIC, PARTNER)}
