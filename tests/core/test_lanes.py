"""The machine lane (core/http/lanes.py): the partner API skips the browser middleware, nothing else."""

import json

import pytest
from django.conf import settings
from django.test import Client
from prometheus_client import REGISTRY

from tests.access.decision_scene import build_scene
from tests.partners import partner_api

pytestmark = pytest.mark.django_db
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller

URL = "/partner/v1/access-decisions"
SHARED = [
    "core.http.proxy.TrustedProxyMiddleware",
    "core.http.middleware.RequestIdMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "core.http.middleware.AccessLogMiddleware",
    "core.http.middleware.BodySizeLimitMiddleware",
    "core.http.middleware.SharedCacheOutageMiddleware",
    "core.http.mtls.ClientCertificateMiddleware",
    "django.middleware.security.SecurityMiddleware",
]


def decide(caller, device_ref):
    return caller.post(URL, {"device_ref": device_ref, "credential": {"type": "plate", "token": "t" * 43},
                             "request_id": "lane-1", "observed_at": "2026-01-01T00:00:00Z"})


def test_every_request_passes_the_shared_middleware_before_the_lane_splits():
    switch = settings.MIDDLEWARE.index("core.http.lanes.MachineLaneMiddleware")
    assert settings.MIDDLEWARE[:switch] == SHARED
    assert "django.contrib.sessions.middleware.SessionMiddleware" not in settings.MACHINE_LANE_MIDDLEWARE
    assert settings.MACHINE_LANE_MIDDLEWARE[-1] == settings.MIDDLEWARE[-1]  # metrics close both stacks


def test_a_partner_call_skips_the_browser_middleware(partner_caller):
    scene = build_scene(partner_caller)
    response = decide(partner_caller, scene.device.partner_device_ref)
    assert response.status_code == 200
    assert "X-Frame-Options" not in response  # XFrameOptionsMiddleware is browser-only
    assert not response.cookies
    assert response["X-Request-ID"]  # shared middleware still ran
    assert response.wsgi_request.client_certificate is not None
    assert not hasattr(response.wsgi_request, "session")


def test_browser_paths_keep_the_full_stack():
    response = Client().get("/api/v1/me")
    assert response.status_code == 401
    assert response["X-Frame-Options"] == "DENY"
    assert hasattr(response.wsgi_request, "session")


def test_lane_errors_are_problem_documents(partner_caller):
    unknown = partner_caller.client.get("/partner/v1/no-such-thing", secure=True, **partner_caller.headers())
    assert unknown.status_code == 404
    assert unknown["Content-Type"].startswith("application/problem+json")
    body = json.dumps({"pad": "x" * settings.REQUEST_BODY_MAX_BYTES})
    too_big = partner_caller.client.post(URL, body, content_type="application/json", secure=True,
                                         **partner_caller.headers())
    assert too_big.status_code == 413


def test_lane_requests_are_counted_by_view(partner_caller):
    scene = build_scene(partner_caller)
    labels = {"status": "200", "view": "partner-v1:access-decisions", "method": "POST"}
    before = REGISTRY.get_sample_value("django_http_responses_total_by_status_view_method_total", labels) or 0
    assert decide(partner_caller, scene.device.partner_device_ref).status_code == 200
    after = REGISTRY.get_sample_value("django_http_responses_total_by_status_view_method_total", labels)
    assert after == before + 1
