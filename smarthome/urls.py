"""The public pool's URL map: probes, metrics, OAuth2, admin (2FA), OpenAPI and the resident API.

The partner API is the partner pool's (smarthome/partner_urls.py): `/partner/` is 404 here.
"""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from oauth2_provider import views as oauth_views
from two_factor.urls import urlpatterns as two_factor_patterns

from core.http.problems import handler400, handler403, handler404, handler500  # noqa: F401 - this map's error views
from core.observability.urls import probe_urlpatterns
from core.portal.site import admin_site  # the OTP-required admin (+ building dashboard)
from identity.views import login as identity_login
from identity.views import oauth as identity_oauth

api_v1 = [
    path("", include("access.urls")),
    path("", include("consent.urls")),
    path("", include("audit.urls")),
]

# Only the protocol endpoints of django-oauth-toolkit: no self-service application management.
# identity's subclasses of core.auth's views add the sign-in audit and the provider's acr rule.
oauth_endpoints = [
    path("authorize/", identity_oauth.AuthorizationView.as_view(), name="authorize"),
    path("token/", identity_oauth.TokenView.as_view(), name="token"),
    path("revoke_token/", identity_oauth.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", oauth_views.IntrospectTokenView.as_view(), name="introspect"),
]

urlpatterns = [
    *probe_urlpatterns("public"),
    path("accounts/login/", identity_login.ResidentLoginView.as_view(), name="resident-login"),
    path("accounts/", include("identity.urls")),
    path("o/", include((oauth_endpoints, "oauth2_provider"), namespace="oauth2_provider")),
    path("", include(two_factor_patterns)),
    path("admin/", admin_site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # the split view serves its script as a file: the page needs no inline script (CSP)
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
]
