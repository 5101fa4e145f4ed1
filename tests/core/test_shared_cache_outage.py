"""Redis (the shared cache and broker) stops: every path answers as docs/operations.md says - never a 500.

A dedicated Redis is started for each test, used (so the processes hold pooled connections to it,
as they would in production) and then stopped; the suite's own Redis is left alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY

from access.models import GuestPass, OpenRequest, Vehicle
from audit.actions import Action
from audit.models import AuditEvent
from partners.client.breaker import forget_breakers
from tests import factories, infra
from tests.access.api.conftest import api, estate  # noqa: F401 - fixtures
from tests.access.decision_scene import build_scene
from tests.admin.conftest import login_verified, staff_user
from tests.partners import partner_api
from tests.partners.outbox_fixtures import client_settings, sandbox_partner  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db, pytest.mark.redis, pytest.mark.postgres, pytest.mark.partner]
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller


def outages(path: str) -> float:
    return REGISTRY.get_sample_value("smarthome_shared_cache_unavailable_total", {"path": path}) or 0.0


@pytest.fixture
def redis_stops(settings):
    """Point the cache, broker URL and breaker store at a Redis of this test's own; call it to stop Redis."""
    executor = infra.redis_executor()
    executor.start()
    settings.REDIS_URL = infra.redis_url(executor)
    settings.CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": settings.REDIS_URL,
        "KEY_PREFIX": "smarthome", "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }}
    forget_breakers()

    def stop():
        executor.stop()

    yield stop
    if executor.running():
        executor.stop()
    forget_breakers()


@dataclass
class World:
    estate: object
    scene: object
    vehicle: Vehicle
    resident_client: object


@pytest.fixture
def world(estate, partner_caller, redis_stops):  # noqa: F811
    vehicle = factories.vehicle(resident_=estate.resident)
    client = api(estate.resident.user)
    # Redis is used while it is up: pooled connections exist when it goes away.
    assert client.get("/api/v1/devices").status_code == 200
    scene = build_scene(partner_caller)
    redis_stops()
    return World(estate=estate, scene=scene, vehicle=vehicle, resident_client=client)


def decide(scene):
    return scene.caller.post("/partner/v1/access-decisions", {
        "device_ref": scene.device.partner_device_ref,
        "credential": {"type": "plate", "token": scene.plate_token},
        "request_id": f"req-{uuid.uuid4().hex[:8]}", "observed_at": timezone.now().isoformat(),
    })


def assert_refused_503(response):
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) >= 1
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/shared-cache-unavailable"


def test_partner_decisions_keep_answering_and_raise_the_alert_metric(world):
    before = outages("partner_decision")
    response = decide(world.scene)
    assert response.status_code == 200, response.content
    assert (response.json()["decision"], response.json()["reason"]) == ("allow", "granted")
    assert AuditEvent.objects.filter(action=Action.ACCESS_DECISION, reason="granted").count() == 1
    assert outages("partner_decision") > before


def test_malformed_partner_decisions_are_still_400(world):
    response = world.scene.caller.post("/partner/v1/access-decisions", {"device_ref": "x"})
    assert response.status_code == 400


def test_partner_events_keep_being_processed(world):
    from tests.partners.test_webhooks import online, send

    response = send(world.scene.caller, *online(world.scene.caller, world.scene.device))
    assert response.status_code == 200, response.content
    world.scene.device.refresh_from_db()
    assert world.scene.device.online


def test_the_token_endpoint_keeps_issuing_tokens(world):
    before = outages("token")
    assert world.scene.caller.fetch_token()["access_token"]
    assert outages("token") > before


@pytest.mark.parametrize("path", ["/api/v1/devices", "/api/v1/vehicles", "/api/v1/history", "/api/v1/me"])
def test_resident_reads_go_on_without_the_rate_limit(world, path):
    before = outages("resident_read")
    response = world.resident_client.get(path)
    assert response.status_code == 200, response.content
    if path != "/api/v1/me":  # /me has no rate limit to skip
        assert outages("resident_read") > before


def test_remote_open_is_503_and_opens_nothing(world):
    before = outages("resident_write")
    response = world.resident_client.post(f"/api/v1/devices/{world.estate.door.pk}/open",
                                          HTTP_IDEMPOTENCY_KEY="outage-key-0001")
    assert_refused_503(response)
    assert not OpenRequest.objects.exists()
    assert world.estate.sandbox.control.log()["entries"] == []
    assert outages("resident_write") > before


def test_vehicle_writes_are_503_and_change_nothing(world):
    client, vehicle = world.resident_client, world.vehicle
    assert_refused_503(client.post("/api/v1/vehicles", {"plate": "В456ОР199"}, format="json"))
    assert_refused_503(client.patch(f"/api/v1/vehicles/{vehicle.pk}", {"label": "new"}, format="json"))
    assert_refused_503(client.delete(f"/api/v1/vehicles/{vehicle.pk}"))
    assert list(Vehicle.objects.filter(resident=world.estate.resident)) == [vehicle]
    vehicle.refresh_from_db()
    assert vehicle.label != "new"


def test_guest_pass_creation_is_503_and_creates_nothing(world):
    response = world.resident_client.post(
        "/api/v1/guest-passes", {"device_id": world.estate.barrier.pk, "plate": "В456ОР199"}, format="json")
    assert_refused_503(response)
    assert not GuestPass.objects.exists()


def test_consent_reads_answer(world):
    client = api(world.estate.resident.user, scope="history:read consent:write")
    assert client.get("/api/v1/consents").status_code == 200


def test_resident_login_is_503(world, client):
    before = outages("login")
    response = client.post("/accounts/login/", {"username": "nobody", "password": "x"})
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    assert outages("login") > before


def test_the_admin_answers(world, client):
    user = staff_user("root-outage", superuser=True)
    login_verified(client, user)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/access/device/").status_code == 200


def test_probes_and_metrics_answer(world, client):
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert set(ready.json()["failed"]) == {"cache", "broker"}
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_a_write_that_works_with_redis_is_503_once_it_stops(estate, redis_stops):  # noqa: F811
    client = api(estate.resident.user)
    assert client.post("/api/v1/vehicles", {"plate": "В456ОР199"}, format="json").status_code == 201
    redis_stops()
    assert_refused_503(client.post("/api/v1/vehicles", {"plate": "Е789КХ50"}, format="json"))
