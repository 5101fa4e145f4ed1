"""Guest passes, history and notifications."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from access.models import AccessGrant, GuestPass, Notification
from access.plates import plate_token
from access.reasons import Reason
from access.services.decisions import access_decide
from access.services.notifications import notification_create
from audit.actions import Action
from audit.models import AuditEvent
from partners.models import PartnerContract
from partners.selectors import current_credentials
from tests import factories
from tests.access.api.conftest import api

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def decide(estate, token):
    """The sandbox partner asks whether the car with this plate token may pass the barrier."""
    return access_decide(partner=estate.partner, device_ref=estate.barrier.partner_device_ref,
                         credential_type="plate", credential_token=token)


def create_pass(client, device, **overrides):
    body = {"device_id": device.pk, "plate": "Е777КХ750", **overrides}
    return client.post("/api/v1/guest-passes", body, format="json")


# --- guest passes -----------------------------------------------------------------------------


def test_guest_pass_lifecycle(estate):
    client = api(estate.resident.user, "guests:write")
    created = create_pass(client, estate.barrier, one_time=True, label="сантехник")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["plate"], body["one_time"], body["active"]) == ("E777KX750", True, True)
    guest_pass = GuestPass.objects.get(pk=body["id"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT plate FROM access_guestpass WHERE id = %s", [guest_pass.pk])
        assert "E777KX750" not in cursor.fetchone()[0]
    key = current_credentials(partner=estate.partner).plate_token_key_bytes()
    token = plate_token(key=key, plate="E777KX750")
    # the partner's decision finds it by the partner's plate token, and a one-time pass lets one car in
    assert decide(estate, token).reason == Reason.GUEST_PASS
    assert decide(estate, token).reason == Reason.UNKNOWN_CREDENTIAL
    assert client.get(f"/api/v1/guest-passes/{guest_pass.pk}").json()["active"] is False
    # a time-limited pass, revoked
    second = create_pass(client, estate.barrier).json()
    assert client.post(f"/api/v1/guest-passes/{second['id']}/revoke").status_code == 200
    assert client.post(f"/api/v1/guest-passes/{second['id']}/revoke").status_code == 200  # idempotent
    assert decide(estate, token).reason == Reason.UNKNOWN_CREDENTIAL
    listed = client.get("/api/v1/guest-passes").json()["results"]
    assert {p["id"] for p in listed} == {guest_pass.pk, second["id"]}
    assert AuditEvent.objects.filter(action=Action.RESIDENT_GUEST_PASS_CREATE).count() == 2
    assert AuditEvent.objects.filter(action=Action.RESIDENT_GUEST_PASS_REVOKE).count() == 1


def test_revocation_is_an_explicit_idempotent_action_and_the_pass_stays_readable(estate):
    client = api(estate.resident.user, "guests:write")
    guest_pass = create_pass(client, estate.barrier, label="курьер").json()
    assert guest_pass["status"] == "active"
    revoked = client.post(f"/api/v1/guest-passes/{guest_pass['id']}/revoke")
    assert revoked.status_code == 200
    body = revoked.json()
    assert (body["id"], body["status"], body["active"], body["label"]) == (guest_pass["id"], "revoked", False, "курьер")
    assert body["revoked_at"] is not None
    again = client.post(f"/api/v1/guest-passes/{guest_pass['id']}/revoke").json()
    assert again == body  # idempotent: the same pass, the same revocation time
    assert AuditEvent.objects.filter(action=Action.RESIDENT_GUEST_PASS_REVOKE).count() == 1
    shown = client.get(f"/api/v1/guest-passes/{guest_pass['id']}")
    assert (shown.status_code, shown.json()["status"]) == (200, "revoked")
    listed = client.get("/api/v1/guest-passes").json()["results"]
    assert [(p["id"], p["status"]) for p in listed] == [(guest_pass["id"], "revoked")]


def test_delete_is_not_a_guest_pass_method(estate):
    client = api(estate.resident.user, "guests:write")
    guest_pass = create_pass(client, estate.barrier).json()
    response = client.delete(f"/api/v1/guest-passes/{guest_pass['id']}")
    assert response.status_code == 405
    assert response.json()["type"] == "/problems/method-not-allowed"
    assert "DELETE" not in response["Allow"]
    assert GuestPass.objects.get(pk=guest_pass["id"]).revoked_at is None
    assert not AuditEvent.objects.filter(action=Action.RESIDENT_GUEST_PASS_REVOKE).exists()


def test_revoke_needs_the_scope_and_your_own_pass(estate):
    guest_pass = create_pass(api(estate.resident.user, "guests:write"), estate.barrier).json()
    refused = api(estate.resident.user, "history:read").post(f"/api/v1/guest-passes/{guest_pass['id']}/revoke")
    assert (refused.status_code, refused.json()["required_scope"]) == (403, "guests:write")
    assert api().post(f"/api/v1/guest-passes/{guest_pass['id']}/revoke").status_code == 401
    assert api(estate.other.user, "guests:write").post(
        f"/api/v1/guest-passes/{guest_pass['id']}/revoke").status_code == 404
    assert GuestPass.objects.get(pk=guest_pass["id"]).revoked_at is None


def test_guest_pass_status(estate):
    now = timezone.now()
    client = api(estate.resident.user, "guests:write")
    later = create_pass(client, estate.barrier, valid_from=(now + datetime.timedelta(hours=1)).isoformat()).json()
    assert later["status"] == "scheduled"
    once = create_pass(client, estate.barrier, one_time=True).json()
    GuestPass.objects.filter(pk=once["id"]).update(used_at=now)
    ended = create_pass(client, estate.barrier).json()
    GuestPass.objects.filter(pk=ended["id"]).update(valid_from=now - datetime.timedelta(days=2),
                                                    valid_until=now - datetime.timedelta(days=1))
    statuses = {p["id"]: p["status"] for p in client.get("/api/v1/guest-passes").json()["results"]}
    assert statuses == {later["id"]: "scheduled", once["id"]: "used", ended["id"]: "expired"}


def test_guest_pass_limit_and_validation(estate, settings):
    settings.GUEST_PASSES_ACTIVE_MAX = 2
    client = api(estate.resident.user, "guests:write")
    assert create_pass(client, estate.barrier).status_code == 201
    assert create_pass(client, estate.barrier).status_code == 201
    response = create_pass(client, estate.barrier)
    assert response.status_code == 409  # a conflict with the passes you have, not a malformed request
    assert response.json()["type"] == "/problems/limit-reached"
    assert response.json()["errors"][0]["code"] == "limit_reached"
    GuestPass.objects.all().delete()
    now = timezone.now()
    too_long = create_pass(client, estate.barrier, valid_from=now.isoformat(),
                           valid_until=(now + datetime.timedelta(days=8)).isoformat())
    assert (too_long.status_code, too_long.json()["errors"][0]["code"]) == (400, "too_long")
    past = create_pass(client, estate.barrier, valid_from=(now - datetime.timedelta(hours=1)).isoformat())
    assert past.json()["errors"][0]["code"] == "in_past"
    assert create_pass(client, estate.barrier, plate="nonsense").json()["errors"][0]["field"] == "plate"
    assert create_pass(client, estate.door).json()["errors"][0]["code"] == "not_a_barrier"
    assert not GuestPass.objects.exists()


def test_guest_pass_auth_scope_foreign_and_rules(estate):
    assert api().get("/api/v1/guest-passes").status_code == 401
    response = create_pass(api(estate.resident.user, "barriers:open"), estate.barrier)
    assert (response.status_code, response.json()["required_scope"]) == (403, "guests:write")
    client = api(estate.resident.user, "guests:write")
    foreign_barrier = factories.device(building_=estate.foreign_door.building, partner_=estate.partner,
                                       kind="barrier")
    response = create_pass(client, foreign_barrier)
    assert (response.status_code, response.json()["errors"][0]["code"]) == (400, "does_not_exist")
    theirs = create_pass(api(estate.other.user, "guests:write"), estate.barrier).json()
    assert client.get(f"/api/v1/guest-passes/{theirs['id']}").status_code == 404
    assert client.post(f"/api/v1/guest-passes/{theirs['id']}/revoke").status_code == 404
    assert GuestPass.objects.get(pk=theirs["id"]).revoked_at is None
    PartnerContract.objects.filter(buildings=estate.barrier.building).update(allows_plate=False)
    assert create_pass(client, estate.barrier).json()["reason"] == "contract-not-covering"
    PartnerContract.objects.filter(buildings=estate.barrier.building).update(allows_plate=True)
    AccessGrant.objects.filter(resident=estate.resident).update(valid_until=timezone.now() - datetime.timedelta(
        seconds=1), valid_from=timezone.now() - datetime.timedelta(days=1))
    assert create_pass(client, estate.barrier).json()["reason"] == "grant-expired"
    assert GuestPass.objects.count() == 1


def test_suspended_resident_is_refused_everywhere(estate):
    type(estate.resident).objects.filter(pk=estate.resident.pk).update(suspended=True)
    client = api(estate.resident.user)
    for method, path in (("get", "/api/v1/devices"), ("get", "/api/v1/vehicles"), ("get", "/api/v1/guest-passes"),
                         ("get", "/api/v1/history"), ("get", "/api/v1/notifications")):
        response = getattr(client, method)(path)
        assert (response.status_code, response.json()["type"]) == (403, "/problems/resident-suspended"), path
    assert create_pass(client, estate.barrier).status_code == 403
    response = client.post(f"/api/v1/devices/{estate.camera.pk}/video-sessions", {}, format="json")
    assert response.json()["reason"] == "resident-suspended"
    assert not GuestPass.objects.exists()


# --- history ----------------------------------------------------------------------------------


def test_history_shows_only_own_events_filtered_by_device_and_date(estate):
    mine, theirs = api(estate.resident.user), api(estate.other.user)
    for client, device in ((mine, estate.door), (mine, estate.barrier), (theirs, estate.door)):
        response = client.post(f"/api/v1/devices/{device.pk}/open", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
        assert response.status_code == 200
    events = mine.get("/api/v1/history").json()
    assert events["count"] == 2
    assert {e["action"] for e in events["results"]} == {"resident.open"}
    door_only = mine.get("/api/v1/history", {"device_id": estate.door.pk}).json()
    assert [e["device_ref"] for e in door_only["results"]] == [estate.door.partner_device_ref]
    tomorrow = (timezone.now() + datetime.timedelta(days=1)).date().isoformat()
    assert mine.get("/api/v1/history", {"since": tomorrow}).json()["count"] == 0
    assert mine.get("/api/v1/history", {"until": tomorrow}).json()["count"] == 2
    assert mine.get("/api/v1/history", {"device_id": estate.foreign_door.pk}).status_code == 404
    assert mine.get("/api/v1/history", {"since": "not a date"}).status_code == 400
    assert api(estate.resident.user, "devices:read").get("/api/v1/history").json()["required_scope"] == "history:read"
    assert api().get("/api/v1/history").status_code == 401


# --- notifications ----------------------------------------------------------------------------


def test_notifications_list_and_mark_read(estate):
    now = timezone.now()
    first = notification_create(resident_id=estate.resident.pk, kind="guest.arrived", device_id=estate.barrier.pk,
                                occurred_at=now - datetime.timedelta(minutes=5), data={"guest_pass_id": 1})
    notification_create(resident_id=estate.resident.pk, kind="face.opened", occurred_at=now)
    theirs = notification_create(resident_id=estate.other.pk, kind="face.opened", occurred_at=now)
    client = api(estate.resident.user, "history:read")
    listed = client.get("/api/v1/notifications").json()
    assert [n["kind"] for n in listed["results"]] == ["face.opened", "guest.arrived"]
    read = client.post(f"/api/v1/notifications/{first.pk}/read")
    assert (read.status_code, read.json()["read"]) == (200, True)
    assert client.get("/api/v1/notifications", {"unread": "true"}).json()["count"] == 1
    assert client.post(f"/api/v1/notifications/{theirs.pk}/read").status_code == 404
    assert Notification.objects.get(pk=theirs.pk).read_at is None
    assert api(estate.resident.user, "devices:read").get("/api/v1/notifications").status_code == 403
    assert api().get("/api/v1/notifications").status_code == 401


def test_notification_data_refuses_personal_data(estate):
    from django.core.exceptions import ValidationError

    for data in ({"plate": "A123BC77"}, {"note": "Иванов Иван"}, {"nested": {"a": 1}}):
        with pytest.raises(ValidationError):
            notification_create(resident_id=estate.resident.pk, kind="guest.arrived", occurred_at=timezone.now(),
                                data=data)
    assert not Notification.objects.exists()
