"""URL map: probes, metrics, OAuth2, admin (2FA), the language switch, OpenAPI, and the versioned APIs."""

from django.urls import include, path
from django.views.i18n import set_language
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core.auth import views as auth_views
from core.auth.two_factor_pages import urlpatterns as two_factor_patterns
from core.observability import health, metrics
from core.portal.site import admin_site  # the OTP-required admin (+ building dashboard)
from identity.views import login as identity_login
from identity.views import oauth as identity_oauth

handler400 = "core.http.problems.handler400"
handler403 = "core.http.problems.handler403"
handler404 = "core.http.problems.handler404"
handler500 = "core.http.problems.handler500"

api_v1 = [
    path("", include("access.urls")),
    path("", include("consent.urls")),
    path("", include("audit.urls")),
]
partner_v1 = [
    path("", include("access.partner_urls")),
    path("", include("partners.urls")),
]

# Only the protocol endpoints of django-oauth-toolkit: no self-service application management.
# identity's subclasses of core.auth's views add the sign-in audit and the provider's acr rule.
oauth_endpoints = [
    path("authorize/", identity_oauth.AuthorizationView.as_view(), name="authorize"),
    path("token/", identity_oauth.TokenView.as_view(), name="token"),
    path("revoke_token/", identity_oauth.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", auth_views.IntrospectTokenView.as_view(), name="introspect"),
]

urlpatterns = [
    # first: the access-decision hot path resolves without trying the patterns below
    path("partner/v1/", include((partner_v1, "partner"), namespace="partner-v1")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("accounts/login/", identity_login.ResidentLoginView.as_view(), name="resident-login"),
    path("accounts/", include("identity.urls")),
    path("o/", include((oauth_endpoints, "oauth2_provider"), namespace="oauth2_provider")),
    path("", include(two_factor_patterns)),
    path("admin/", admin_site.urls),
    # the portal's language switch (POST, CSRF-protected): a cookie LocaleMiddleware reads
    path("i18n/setlang/", set_language, name="set_language"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # the split view serves its script as a file: the page needs no inline script (CSP)
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
]
