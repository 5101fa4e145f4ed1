"""A test-only view that shows which client certificate the service believes, in either pool
(this module: the public pool's URL map; `partner_urlpatterns`: the partner pool's, see
`mtls_partner_urls`)."""

from django.http import JsonResponse
from django.urls import path

from core.http.client_ip import client_ip
from smarthome.partner_urls import urlpatterns as partner_pool_urlpatterns
from smarthome.urls import urlpatterns as real_urlpatterns


def whoami(request):
    cert = request.client_certificate
    return JsonResponse({
        "x5t_s256": cert.x5t_s256 if cert else None,
        "fingerprint": cert.fingerprint_sha256 if cert else None,
        "client_ip": client_ip(request),
    })


urlpatterns = [path("api/v1/_test/whoami", whoami), *real_urlpatterns]
partner_urlpatterns = [path("partner/v1/_test/whoami", whoami), *partner_pool_urlpatterns]
