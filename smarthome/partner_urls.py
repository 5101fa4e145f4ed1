"""The partner pool's URL map: the partner API, the token endpoint partners call, probes, metrics.

Served by smarthome.wsgi_partner behind nginx's mTLS listener (smarthome/settings/pools.py);
everything else is 404 here. `/o/token/` is here because partners fetch their client-credentials
token through the mTLS listener, which binds it to their certificate (RFC 8705).
"""

from django.urls import include, path

from core.http.problems import handler400, handler403, handler404, handler500  # noqa: F401 - this map's error views
from core.observability.urls import probe_urlpatterns

partner_v1 = [
    path("", include("access.partner_urls")),
    path("", include("partners.urls")),
]

urlpatterns = [
    # first: the access-decision hot path resolves without trying the patterns below
    path("partner/v1/", include((partner_v1, "partner"), namespace="partner-v1")),
    path("o/", include(("identity.partner_oauth_urls", "oauth2_provider"), namespace="oauth2_provider")),
    *probe_urlpatterns("partner"),
]
