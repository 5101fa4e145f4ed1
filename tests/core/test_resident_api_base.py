"""The resident API base (core/api/resident.py): scopes denied by default on every endpoint of every
app, and the consent and biometrics endpoints behind the same guards as the access ones."""

import datetime
import json
import re

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import GuestPass, Notification
from consent.models import Consent
from core.api.resident import ResidentApi
from tests import factories
from tests.access.api.conftest import ALL_SCOPES, make_token
from tests.consent.conftest import make_photo

pytestmark = pytest.mark.django_db

EVERY_SCOPE = set(ALL_SCOPES.split()) | {"consent:write"}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def resident_endpoints(patterns=None, prefix=""):
    """(route, view class) of every URL whose view is a ResidentApi, whichever app declares it."""
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from resident_endpoints(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "view_class", None)
            if view_class is not None and issubclass(view_class, ResidentApi):
                yield prefix + str(entry.pattern), view_class


@pytest.fixture
def world():
    building = factories.building()
    resident = factories.resident(unit_=factories.unit(building_=building))
    partner = factories.partner()
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    door = factories.device(building_=building, partner_=partner)
    barrier = factories.device(building_=building, partner_=partner, kind="barrier")
    factories.grant(resident_=resident, building_=building)
    vehicle = factories.vehicle(resident_=resident)
    now = timezone.now()
    guest_pass = GuestPass.objects.create(
        resident=resident, device=barrier, plate="А123ВС77", plate_token="t" * 43, valid_from=now,
        valid_until=now + datetime.timedelta(hours=2),
    )
    notification = Notification.objects.create(resident=resident, kind="guest.arrived", occurred_at=now)
    consent = factories.face_enrolment(resident_=resident, partner_=partner).consent
    ids = {"device_id": door.pk, "vehicle_id": vehicle.pk, "pass_id": guest_pass.pk,
           "notification_id": notification.pk, "pk": consent.pk}
    return resident, ids


def concrete(route: str, ids: dict) -> str:
    return "/" + re.sub(r"<int:(\w+)>", lambda m: str(ids[m.group(1)]), route)


def snapshot():
    """Every row of the domain apps, so a refused request is seen to have changed nothing."""
    return {
        model._meta.label: sorted(map(repr, model.objects.values_list()))
        for name in ("access", "consent", "partners", "audit") for model in apps.get_app_config(name).get_models()
    }


def resident_client(resident, scopes=EVERY_SCOPE) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(resident.user, ' '.join(sorted(scopes)))}")
    return client


def call(client, method, path):
    return getattr(client, method.lower())(path, **({"format": "json"} if method in ("POST", "PUT", "PATCH") else {}))


def test_every_resident_endpoint_refuses_a_token_without_its_scope(world, settings):
    settings.API_RATE_PER_MIN = 100000
    resident, ids = world
    endpoints = list(resident_endpoints())
    routes = {route for route, _ in endpoints}
    # the consent app's endpoints stand behind the same base as the access app's
    assert {"api/v1/consents", "api/v1/biometrics/face", "api/v1/devices/<int:device_id>/open"} <= routes
    before = snapshot()
    checked = 0
    for route, view_class in endpoints:
        path = concrete(route, ids)
        for method in METHODS:
            handler = "get" if method == "HEAD" else method.lower()
            declared = view_class.required_scopes.get("GET" if method == "HEAD" else method, ())
            client = resident_client(resident, EVERY_SCOPE - set(declared))
            response = call(client, method, path)
            if not hasattr(view_class, handler):
                assert response.status_code == 405, (method, path, response.content)
                assert method not in response["Allow"]
            else:
                assert response.status_code == 403, (method, path, response.content)
                if method != "HEAD":
                    assert response.json()["type"] == "/problems/missing-scope", (method, path)
                checked += 1
    assert checked >= 20
    assert snapshot() == before


class _Undeclared(ResidentApi):
    required_scopes = {"GET": ("devices:read",)}

    def get(self, request):
        raise AssertionError("GET with a token lacking devices:read reached the view")

    def post(self, request):  # implemented, but no scope declared for it
        raise AssertionError("an undeclared method reached the view")


def test_a_method_without_a_declared_scope_is_refused_to_any_token(world, rf):
    resident, _ = world
    token = make_token(resident.user)  # every resident scope
    for method in ("post", "options"):
        request = getattr(rf, method)("/x", data="{}", content_type="application/json",
                                      HTTP_AUTHORIZATION=f"Bearer {token}")
        response = _Undeclared.as_view()(request)
        assert response.status_code == 403
        assert json.loads(response.content)["type"] == "/problems/missing-scope"
    put = _Undeclared.as_view()(rf.put("/x", HTTP_AUTHORIZATION=f"Bearer {token}"))
    assert put.status_code == 405
    assert "PUT" not in put["Allow"]


@pytest.fixture
def suspended(world):
    resident, ids = world
    resident.suspended = True
    resident.save(update_fields=["suspended"])
    return resident, ids


def test_a_suspended_resident_is_refused_on_consent_and_biometrics(suspended):
    resident, ids = suspended
    client = resident_client(resident)
    consent = Consent.objects.get(pk=ids["pk"])
    photo = SimpleUploadedFile("face.jpg", make_photo(), content_type="image/jpeg")
    before = snapshot()
    requests = [
        client.get("/api/v1/consents"),
        client.post("/api/v1/consents", {"partner": consent.partner_id, "text_sha256": consent.text.sha256},
                    format="json"),
        client.post(f"/api/v1/consents/{consent.pk}/revoke"),
        client.get(f"/api/v1/consents/{consent.pk}/receipt"),
        client.get("/api/v1/biometrics/face"),
        client.post("/api/v1/biometrics/face", {"partner": str(consent.partner_id), "photo": photo},
                    format="multipart"),
        client.get("/api/v1/me/data-export"),
    ]
    for response in requests:
        assert response.status_code == 403, response.content
        assert response.json()["type"] == "/problems/resident-suspended"
    assert snapshot() == before
    assert Consent.objects.get(pk=consent.pk).revoked_at is None


def test_the_per_user_rate_limit_covers_consent_and_biometrics(world, settings):
    resident, ids = world
    settings.API_RATE_PER_MIN = 3
    client = resident_client(resident)
    statuses = [client.get(path).status_code for path in
                ("/api/v1/consents", "/api/v1/biometrics/face", f"/api/v1/consents/{ids['pk']}/receipt")]
    assert statuses == [200, 200, 200]
    limited = client.get("/api/v1/me/data-export")
    assert limited.status_code == 429
    assert limited.json()["type"] == "/problems/rate-limited"
    assert int(limited["Retry-After"]) >= 1
    assert client.post(f"/api/v1/consents/{ids['pk']}/revoke").status_code == 429
    assert Consent.objects.get(pk=ids["pk"]).revoked_at is None
