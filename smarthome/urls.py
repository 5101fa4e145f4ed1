"""URL map: probes, metrics, OAuth2, admin (2FA), OpenAPI, and the versioned APIs."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from oauth2_provider import views as oauth_views

from core.auth import views as auth_views
from core.auth.two_factor_pages import urlpatterns as two_factor_patterns
from core.observability import health, metrics
from core.portal.site import admin_site  # the OTP-required admin (+ building dashboard)

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
oauth_endpoints = [
    path("authorize/", auth_views.ResidentAuthorizationView.as_view(), name="authorize"),
    path("token/", auth_views.RateLimitedTokenView.as_view(), name="token"),
    path("revoke_token/", oauth_views.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", oauth_views.IntrospectTokenView.as_view(), name="introspect"),
]

urlpatterns = [
    # first: the access-decision hot path resolves without trying the patterns below
    path("partner/v1/", include((partner_v1, "partner"), namespace="partner-v1")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("accounts/login/", auth_views.ResidentLoginView.as_view(), name="resident-login"),
    path("o/", include((oauth_endpoints, "oauth2_provider"), namespace="oauth2_provider")),
    path("", include(two_factor_patterns)),
    path("admin/", admin_site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
]
