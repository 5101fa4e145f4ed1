"""Prometheus /metrics, answered only to allowlisted networks or a bearer token (what it holds:
core/observability/scrape.py)."""

import hmac

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST

from core.http.client_ip import address_in
from core.http.problems import problem_response
from core.observability.scrape import exposition


def client_may_scrape(request) -> bool:
    token = settings.METRICS_BEARER_TOKEN
    header = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
        return True
    return address_in(request.META.get("REMOTE_ADDR", ""), settings.METRICS_ALLOWED_CIDRS)


def metrics(request):
    if not client_may_scrape(request):
        return problem_response(403, "Metrics are restricted.", request=request)
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
