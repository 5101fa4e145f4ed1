"""The two web worker pools (smarthome/settings/pools.py): the partner pool serves the partner API
with the middleware a machine request needs and nothing else; the public pool serves the rest."""

import json
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import Client
from prometheus_client import REGISTRY

from audit.models import AuditEvent
from smarthome.settings.pools import PARTNER, PUBLIC
from tests.access.decision_scene import build_scene
from tests.core.test_production_settings import PRODUCTION_ENV, ROOT, run_manage
from tests.partners import partner_api
from tests.pools import partner_client

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
BROWSER_ONLY = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.http.middleware.AuditlogMiddleware",
    "axes.middleware.AxesMiddleware",
]


def decide(caller, device_ref):
    return caller.post(URL, {"device_ref": device_ref, "credential": {"type": "plate", "token": "t" * 43},
                             "request_id": "pool-1", "observed_at": "2026-01-01T00:00:00Z"})


def test_every_request_of_either_pool_passes_the_shared_middleware_first():
    for pool in (PUBLIC, PARTNER):
        assert list(pool.middleware[:len(SHARED)]) == SHARED
        assert pool.middleware[-1] == "django_prometheus.middleware.PrometheusAfterMiddleware"  # metrics close both
    assert list(PUBLIC.middleware) == settings.MIDDLEWARE  # this process is the public pool
    assert not set(BROWSER_ONLY) & set(PARTNER.middleware)
    assert set(BROWSER_ONLY) <= set(PUBLIC.middleware)


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


def test_the_public_pool_does_not_serve_the_partner_api(partner_caller):
    """A decision that the partner pool allows is a 404 problem on the public pool: nothing decided."""
    scene = build_scene(partner_caller)
    public = Client()
    body = {"device_ref": scene.device.partner_device_ref, "credential": {"type": "plate", "token": scene.plate_token},
            "request_id": "pool-public", "observed_at": "2026-01-01T00:00:00Z"}
    for path in (URL, "/partner/v1/events"):
        response = public.post(path, body, content_type="application/json", secure=True, **partner_caller.headers())
        assert response.status_code == 404
        assert response["Content-Type"].startswith("application/problem+json")
    assert not AuditEvent.objects.filter(action="access.decision").exists()
    assert decide_allowed(partner_caller, body)  # the same request on the partner pool


def decide_allowed(caller, body) -> bool:
    response = caller.post(URL, body)
    return response.status_code == 200 and response.json()["decision"] == "allow"


@pytest.mark.parametrize("path", ["/api/v1/me", "/admin/", "/accounts/login/", "/o/authorize/", "/api/schema/"])
def test_the_partner_pool_serves_nothing_of_the_public_side(path):
    response = partner_client().get(path)
    assert response.status_code == 404
    assert not response.cookies


def test_each_pool_answers_its_own_probes():
    assert Client().get("/healthz").json() == {"status": "ok", "pool": "public"}
    partner = partner_client()
    assert partner.get("/healthz").json() == {"status": "ok", "pool": "partner"}
    ready = partner.get("/readyz")
    assert ready.status_code == 200, ready.content
    assert ready.json()["pool"] == "partner"
    assert partner.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200


def test_partner_errors_are_problem_documents(partner_caller):
    unknown = partner_caller.client.get("/partner/v1/no-such-thing", secure=True, **partner_caller.headers())
    assert unknown.status_code == 404
    assert unknown["Content-Type"].startswith("application/problem+json")
    body = json.dumps({"pad": "x" * settings.REQUEST_BODY_MAX_BYTES})
    too_big = partner_caller.client.post(URL, body, content_type="application/json", secure=True,
                                         **partner_caller.headers())
    assert too_big.status_code == 413


def test_partner_requests_are_counted_by_view(partner_caller):
    scene = build_scene(partner_caller)
    labels = {"status": "200", "view": "partner-v1:access-decisions", "method": "POST"}
    before = REGISTRY.get_sample_value("django_http_responses_total_by_status_view_method_total", labels) or 0
    assert decide(partner_caller, scene.device.partner_device_ref).status_code == 200
    after = REGISTRY.get_sample_value("django_http_responses_total_by_status_view_method_total", labels)
    assert after == before + 1


# --- a real process of each pool -------------------------------------------------------------

SHOW_POOL = """
import json, sys
from django.conf import settings
import {module}
print(json.dumps({{"pool": settings.SMARTHOME_POOL, "urlconf": settings.ROOT_URLCONF,
                  "middleware": settings.MIDDLEWARE, "production": settings.PRODUCTION}}))
"""


def load_entry_point(module: str, env: dict) -> subprocess.CompletedProcess:
    base = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run([sys.executable, "-c", SHOW_POOL.format(module=module)], cwd=ROOT, env={
        **base, "PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("module", "pool"), [("smarthome.wsgi", PUBLIC), ("smarthome.wsgi_partner", PARTNER)])
def test_each_entry_point_is_its_pool_in_production_too(module, pool):
    result = load_entry_point(module, {"DJANGO_SETTINGS_MODULE": "smarthome.settings.production"})
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == {"pool": pool.name, "urlconf": pool.urlconf, "middleware": list(pool.middleware),
                      "production": True}


def test_an_entry_point_refuses_the_other_pools_variable():
    result = load_entry_point("smarthome.wsgi_partner", {"DJANGO_SETTINGS_MODULE": "smarthome.settings.production",
                                                         "SMARTHOME_POOL": "public"})
    assert result.returncode != 0
    assert "partner pool's WSGI entry point, but SMARTHOME_POOL=public" in result.stderr
    unknown = run_manage("check", env={**PRODUCTION_ENV, "SMARTHOME_POOL": "everything"})
    assert unknown.returncode != 0
    assert "SMARTHOME_POOL must be one of" in unknown.stderr


def test_the_partner_pool_passes_check_deploy():
    partner = {**PRODUCTION_ENV, "SMARTHOME_POOL": "partner"}
    result = run_manage("check", "--deploy", "--fail-level", "DEBUG", env=partner)
    assert result.returncode == 0, result.stderr + result.stdout
