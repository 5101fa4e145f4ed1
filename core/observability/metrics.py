"""Prometheus /metrics, answered only to allowlisted networks or a bearer token (what it holds:
core/observability/scrape.py).

The network is the trusted client address (core/http/client_ip.py), never the TCP peer: behind
nginx the peer is always the proxy. nginx's listeners do not serve /metrics at all.
"""

import hmac

from django.conf import settings
from django.http import HttpResponse
from django.utils.translation import gettext
from prometheus_client import CONTENT_TYPE_LATEST

from core.http.client_ip import client_ip
from core.http.networks import address_in
from core.http.problems import problem_response
from core.observability.scrape import exposition


def client_may_scrape(request) -> bool:
    token = settings.METRICS_BEARER_TOKEN
    header = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    return address_in(client_ip(request), settings.METRICS_ALLOWED_CIDRS)


def metrics(request):
    if not client_may_scrape(request):
        return problem_response(403, gettext("Metrics are restricted."), request=request)
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
