"""POST devices/{id}/video-sessions and the vehicles CRUD."""

from __future__ import annotations

import json

import pytest

from access.models import AccessGrant, Vehicle
from audit.actions import Action, Outcome
from audit.models import AuditEvent
from partners.models import OutboxMessage, PartnerContract
from tests import factories
from tests.access.api.conftest import api

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def sessions(estate) -> list[dict]:
    return [e for e in estate.sandbox.control.log()["entries"] if e["operation"] == "device.webrtc_session"]


def allowlist(estate) -> list:
    site = f"building-{estate.door.building_id}"
    return estate.sandbox.control.state()["allowlists"][site]["entries"]


def video(client, device, body=None):
    return client.post(f"/api/v1/devices/{device.pk}/video-sessions", body or {}, format="json")


# --- video ------------------------------------------------------------------------------------


def test_video_session_returns_the_partners_sdp_ice_and_expiry(estate):
    estate.sandbox.control.put_device(estate.camera.partner_device_ref, online=True)
    response = video(api(estate.resident.user, "video:view"), estate.camera, {"sdp_offer": "v=0\r\n"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["sdp"].startswith("v=0")
    assert body["ice_servers"]
    assert body["expires_at"]
    assert body["session_id"]
    assert len(sessions(estate)) == 1
    event = AuditEvent.objects.get(action=Action.RESIDENT_VIDEO)
    assert event.outcome == Outcome.SUCCESS


def test_video_auth_scope_foreign_kind_and_rules(estate):
    assert video(api(), estate.door).status_code == 401
    response = video(api(estate.resident.user, "doors:open"), estate.door)
    assert (response.status_code, response.json()["required_scope"]) == (403, "video:view")
    client = api(estate.resident.user, "video:view")
    assert video(client, estate.foreign_door).status_code == 404
    assert video(client, estate.barrier).status_code == 409  # no camera
    PartnerContract.objects.filter(buildings=estate.door.building).update(allows_video=False)
    response = video(client, estate.door)
    assert (response.status_code, response.json()["reason"]) == (403, "contract-not-covering")
    PartnerContract.objects.filter(buildings=estate.door.building).update(allows_video=True)
    AccessGrant.objects.filter(resident=estate.resident).update(suspended=True)
    assert video(client, estate.door).json()["reason"] == "grant-suspended"
    assert sessions(estate) == []


def test_video_of_an_offline_device_is_409_and_partner_down_503(estate):
    estate.sandbox.control.put_device(estate.door.partner_device_ref, online=False)
    client = api(estate.resident.user, "video:view")
    response = video(client, estate.door)
    assert (response.status_code, response.json()["type"]) == (409, "/problems/device-offline")
    estate.sandbox.control.down()
    try:
        response = video(client, estate.camera)
    finally:
        estate.sandbox.control.up()
    assert response.status_code == 503
    assert "Retry-After" in response


# --- vehicles ---------------------------------------------------------------------------------


def test_vehicle_crud_normalises_and_encrypts_the_plate(estate):
    client = api(estate.resident.user, "vehicles:write")
    created = client.post("/api/v1/vehicles", {"plate": "а 123 вс 77", "label": "Семейная"}, format="json")
    assert created.status_code == 201, created.json()
    vehicle_id = created.json()["id"]
    assert created.json()["plate"] == "A123BC77"
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT plate FROM access_vehicle WHERE id = %s", [vehicle_id])
        assert "A123BC77" not in cursor.fetchone()[0]
    token = Vehicle.objects.get(pk=vehicle_id).plate_tokens.get(partner=estate.partner).token
    assert token in json.dumps(allowlist(estate))  # delivered to the partner's allowlist
    listed = api(estate.resident.user, "devices:read").get("/api/v1/vehicles").json()
    assert [v["id"] for v in listed["results"]] == [vehicle_id]
    patched = client.patch(f"/api/v1/vehicles/{vehicle_id}", {"plate": "В456ОР199"}, format="json")
    assert (patched.status_code, patched.json()["plate"]) == (200, "B456OP199")
    assert client.get(f"/api/v1/vehicles/{vehicle_id}").json()["label"] == "Семейная"
    assert client.delete(f"/api/v1/vehicles/{vehicle_id}").status_code == 204
    assert not Vehicle.objects.filter(pk=vehicle_id).exists()
    # each plate change reached the partner's allowlist of the building through the outbox, as a patch
    pushes = OutboxMessage.objects.filter(partner=estate.partner, operation="allowlist_patch")
    assert pushes.count() == 3
    assert set(pushes.values_list("status", flat=True)) == {"delivered"}
    assert allowlist(estate) == []  # the partner forgot the deleted car
    actions = set(AuditEvent.objects.filter(object_type="vehicle").values_list("action", flat=True))
    assert {Action.RESIDENT_VEHICLE_CREATE, Action.RESIDENT_VEHICLE_UPDATE, Action.RESIDENT_VEHICLE_DELETE} <= actions


def test_vehicle_invalid_plate_is_400_with_a_field_error(estate):
    response = api(estate.resident.user).post("/api/v1/vehicles", {"plate": "Z999ZZ77"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "plate"
    assert not Vehicle.objects.exists()


def test_vehicles_token_scope_and_foreign_vehicle(estate):
    theirs = factories.vehicle(resident_=estate.other)
    assert api().get("/api/v1/vehicles").status_code == 401
    response = api(estate.resident.user, "devices:read").post("/api/v1/vehicles", {"plate": "А123ВС77"}, format="json")
    assert (response.status_code, response.json()["required_scope"]) == (403, "vehicles:write")
    assert api(estate.resident.user, "history:read").get("/api/v1/vehicles").status_code == 403
    client = api(estate.resident.user, "vehicles:write")
    assert client.get(f"/api/v1/vehicles/{theirs.pk}").status_code == 404
    assert client.patch(f"/api/v1/vehicles/{theirs.pk}", {"label": "mine"}, format="json").status_code == 404
    assert client.delete(f"/api/v1/vehicles/{theirs.pk}").status_code == 404
    theirs.refresh_from_db()
    assert theirs.label == ""
    assert client.get("/api/v1/vehicles").json()["results"] == []
