"""The public pool's URL map: probes, metrics, OAuth2, admin (2FA), the language
switch, OpenAPI and the resident API.

The partner API is the partner pool's (smarthome/partner_urls.py): `/partner/` is 404 here.
Domain apps are mounted by module path (`include("access.urls")`): the project package imports
no domain app.
"""

from django.urls import include, path
from django.views.i18n import set_language
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core.auth.two_factor_pages import urlpatterns as two_factor_patterns
from core.http.problems import handler400, handler403, handler404, handler500  # noqa: F401 - this map's error views
from core.observability.urls import probe_urlpatterns
from core.portal.site import admin_site  # the OTP-required admin (+ building dashboard)

api_v1 = [
    path("", include("access.urls")),
    path("", include("consent.urls")),
    path("", include("audit.urls")),
]

urlpatterns = [
    *probe_urlpatterns("public"),
    path("accounts/login/", include("identity.login_urls")),
    path("accounts/", include("identity.urls")),
    path("o/", include(("identity.oauth_urls", "oauth2_provider"), namespace="oauth2_provider")),
    path("", include(two_factor_patterns)),
    path("admin/", admin_site.urls),
    # the portal's language switch (POST, CSRF-protected): a cookie LocaleMiddleware reads
    path("i18n/setlang/", set_language, name="set_language"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # the split view serves its script as a file: the page needs no inline script (CSP)
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    # tenant-core's master data (OAuth2 client credentials, scope masterdata:write)
    path("integration/v1/", include(("masterdata.urls", "integration"), namespace="integration-v1")),
]
