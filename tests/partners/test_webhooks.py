"""POST /partner/v1/events: Standard Webhooks verification, de-duplication, forward compatibility, effects."""

import datetime
import json
import uuid

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from access.models import Device, Notification
from audit.models import AuditEvent
from partners.authentication import forget_certificate
from partners.models import InboundWebhook, PartnerCredentials
from partners.services import partner_credentials_rotate
from partners.webhooks import webhook_secrets
from tests import factories
from tests.partners import partner_api
from tests.partners.partner_api import make_partner_caller

pytestmark = pytest.mark.django_db
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller

URL = "/partner/v1/events"
OTHER_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def device(partner_caller):
    building = factories.building()
    factories.contract(partner_=partner_caller.partner, company_=building.company, buildings=[building])
    return factories.device(building_=building, partner_=partner_caller.partner, kind="barrier")


def signed(secret, event_type, data, *, webhook_id=None, at=None, extra_signatures=(), body=None):
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.datetime.now(datetime.UTC)
    payload = body if body is not None else json.dumps({"type": event_type, "timestamp": at.isoformat(), "data": data})
    signature = Webhook(secret).sign(webhook_id, at, payload)
    return payload, {
        "HTTP_WEBHOOK_ID": webhook_id,
        "HTTP_WEBHOOK_TIMESTAMP": str(int(at.timestamp())),
        "HTTP_WEBHOOK_SIGNATURE": " ".join([*extra_signatures, signature]),
    }


def send(caller, payload, headers, **kwargs):
    return caller.client.post(URL, payload, content_type="application/json", secure=True,
                              **caller.headers(**kwargs), **headers)


def online(caller, device, secret=None, **kwargs):
    return signed(secret or caller.webhook_secret, "device.online", {"device_ref": device.partner_device_ref}, **kwargs)


def test_signed_event_updates_the_device(partner_caller, device):
    response = send(partner_caller, *online(partner_caller, device))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "processed"
    device.refresh_from_db()
    assert device.online
    assert device.last_seen_at is not None
    webhook = InboundWebhook.objects.get()
    assert webhook.event_type == "device.online"
    assert webhook.processed_at is not None
    assert AuditEvent.objects.filter(action="webhook.received", reason="device.online").count() == 1


def test_the_admin_trail_of_a_device_changed_by_an_event_names_the_partners_address(partner_caller, device):
    from auditlog.models import LogEntry

    assert send(partner_caller, *online(partner_caller, device)).status_code == 200
    entry = LogEntry.objects.get_for_object(device).latest("timestamp")
    assert "online" in entry.changes_dict
    assert (entry.actor, entry.remote_addr) == (None, partner_api.PARTNER_IP)


def test_device_offline(partner_caller, device):
    Device.objects.filter(pk=device.pk).update(online=True)
    payload, headers = signed(partner_caller.webhook_secret, "device.offline",
                              {"device_ref": device.partner_device_ref})
    assert send(partner_caller, payload, headers).status_code == 200
    device.refresh_from_db()
    assert not device.online


def test_replay_is_acknowledged_but_not_processed_twice(partner_caller, device):
    payload, headers = online(partner_caller, device)
    assert send(partner_caller, payload, headers).status_code == 200
    Device.objects.filter(pk=device.pk).update(online=False, last_seen_at=None)
    response = send(partner_caller, payload, headers)
    assert response.status_code == 200
    assert response.json()["status"] == "duplicate"
    device.refresh_from_db()
    assert not device.online
    assert device.last_seen_at is None
    assert InboundWebhook.objects.count() == 1
    assert AuditEvent.objects.filter(action="webhook.received").count() == 1


def assert_rejected(response, device, reason):
    assert response.status_code == 401, response.content
    assert response.json()["type"].endswith("/webhook-signature-invalid")
    assert response.json()["reason"] == reason
    assert not InboundWebhook.objects.exists()
    device.refresh_from_db()
    assert not device.online
    assert AuditEvent.objects.filter(action="webhook.rejected", reason=reason).count() == 1


def test_forged_signature_is_401(partner_caller, device):
    assert_rejected(send(partner_caller, *online(partner_caller, device, secret=OTHER_SECRET)), device, "bad_signature")


def test_tampered_body_is_401(partner_caller, device):
    payload, headers = online(partner_caller, device)
    tampered = payload.replace("device.online", "device.offline")
    assert_rejected(send(partner_caller, tampered, headers), device, "bad_signature")


def test_stale_timestamp_is_401(partner_caller, device):
    old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=6)
    assert_rejected(send(partner_caller, *online(partner_caller, device, at=old)), device, "stale_timestamp")


def test_future_timestamp_is_401(partner_caller, device):
    ahead = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=6)
    assert_rejected(send(partner_caller, *online(partner_caller, device, at=ahead)), device, "stale_timestamp")


def test_timestamp_within_tolerance_is_accepted(partner_caller, device):
    recent = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=4)
    assert send(partner_caller, *online(partner_caller, device, at=recent)).status_code == 200


def test_missing_headers_is_401(partner_caller, device):
    payload, headers = online(partner_caller, device)
    del headers["HTTP_WEBHOOK_SIGNATURE"]
    assert_rejected(send(partner_caller, payload, headers), device, "missing_headers")


def test_garbage_signature_is_401(partner_caller, device):
    payload, headers = online(partner_caller, device)
    headers["HTTP_WEBHOOK_SIGNATURE"] = "v1,@@@not-base64 nonsense"
    assert_rejected(send(partner_caller, payload, headers), device, "malformed_signature")


def test_several_signatures_one_valid(partner_caller, device):
    bogus = Webhook(OTHER_SECRET).sign("msg_x", datetime.datetime.now(datetime.UTC), "{}")
    assert send(partner_caller, *online(partner_caller, device, extra_signatures=[bogus])).status_code == 200


def test_previous_secret_works_during_rotation(partner_caller, device):
    old_secret = partner_caller.webhook_secret
    issued = partner_credentials_rotate(partner=partner_caller.partner)
    forget_certificate(issued.credentials.client_cert_fingerprint)
    assert send(partner_caller, *online(partner_caller, device, secret=old_secret)).status_code == 200
    new = signed(issued.secrets["webhook_secret"], "device.offline", {"device_ref": device.partner_device_ref})
    assert send(partner_caller, *new).status_code == 200


def test_previous_secret_expires_after_the_grace_period(partner_caller, device, settings):
    settings.WEBHOOK_PREVIOUS_SECRET_GRACE_S = 60
    old_secret = partner_caller.webhook_secret
    issued = partner_credentials_rotate(partner=partner_caller.partner)
    forget_certificate(issued.credentials.client_cert_fingerprint)
    PartnerCredentials.objects.filter(revoked_at__isnull=False).update(
        revoked_at=timezone.now() - datetime.timedelta(minutes=2)
    )
    assert_rejected(send(partner_caller, *online(partner_caller, device, secret=old_secret)), device, "bad_signature")


def test_an_emergency_rotation_refuses_the_previous_secret_at_once(partner_caller, device):
    old_secret = partner_caller.webhook_secret
    issued = partner_credentials_rotate(partner=partner_caller.partner, emergency=True)
    forget_certificate(issued.credentials.client_cert_fingerprint)
    assert_rejected(send(partner_caller, *online(partner_caller, device, secret=old_secret)), device, "bad_signature")
    assert AuditEvent.objects.filter(
        action="admin.change", object_ref=f"partner_credentials:{issued.credentials.pk}", reason="rotated_emergency"
    ).count() == 1
    new = online(partner_caller, device, secret=issued.secrets["webhook_secret"])
    assert send(partner_caller, *new).status_code == 200


def test_an_emergency_rotation_also_ends_the_grace_of_earlier_rotations(partner_caller, device):
    first_secret = partner_caller.webhook_secret
    second = partner_credentials_rotate(partner=partner_caller.partner)  # normal: first_secret in grace
    third = partner_credentials_rotate(partner=partner_caller.partner, emergency=True)
    forget_certificate(third.credentials.client_cert_fingerprint)
    partner_id = partner_caller.partner.pk
    assert webhook_secrets(partner_id=partner_id, direction="inbound") == [third.secrets["webhook_secret"]]
    assert webhook_secrets(partner_id=partner_id, direction="outbound") == [third.secrets["outbound_webhook_secret"]]
    for stale in (first_secret, second.secrets["webhook_secret"]):
        payload, headers = online(partner_caller, device, secret=stale)
        assert send(partner_caller, payload, headers).status_code == 401
    assert not InboundWebhook.objects.exists()


def test_after_a_normal_rotation_both_sides_keep_the_previous_secrets_for_the_grace(partner_caller, device):
    before = partner_caller.partner.credentials.get()
    issued = partner_credentials_rotate(partner=partner_caller.partner)
    assert webhook_secrets(partner_id=partner_caller.partner.pk, direction="inbound") == [
        issued.secrets["webhook_secret"], before.webhook_secret,
    ]
    assert webhook_secrets(partner_id=partner_caller.partner.pk, direction="outbound") == [
        issued.secrets["outbound_webhook_secret"], before.outbound_webhook_secret,
    ]


def test_unknown_event_type_is_stored_and_acknowledged(partner_caller, device):
    payload, headers = signed(partner_caller.webhook_secret, "lift.arrived", {"device_ref": "lift-1", "floor": 3})
    response = send(partner_caller, payload, headers)
    assert response.status_code == 200
    assert response.json()["status"] == "stored"
    webhook = InboundWebhook.objects.get()
    assert (webhook.known, webhook.processed_at, webhook.payload) == (False, None, {"device_ref": "lift-1"})


def test_personal_data_is_not_stored(partner_caller, device):
    payload, headers = signed(partner_caller.webhook_secret, "access.denied",
                              {"device_ref": device.partner_device_ref, "plate": "А123ВС77", "name": "Иванов"})
    assert send(partner_caller, payload, headers).status_code == 200
    assert InboundWebhook.objects.get().payload == {"device_ref": device.partner_device_ref}


def assert_refused_as_not_yours(response, code="unknown-device"):
    """422 with the problem type naming what is not the partner's; nothing kept, the refusal audited."""
    assert response.status_code == 422, response.content
    assert response.json()["type"] == f"/problems/{code}"
    assert not InboundWebhook.objects.exists()
    assert not AuditEvent.objects.filter(action="webhook.received").exists()
    assert AuditEvent.objects.filter(action="webhook.rejected", reason=code.replace("-", "_")).count() == 1


def test_event_for_another_partners_device_is_refused_and_changes_nothing(partner_caller, device, dev_pki):
    other = make_partner_caller(dev_pki["smarthome-client.pem"])
    foreign = factories.device(building_=device.building, partner_=other.partner)
    payload, headers = signed(partner_caller.webhook_secret, "device.online",
                              {"device_ref": foreign.partner_device_ref})
    assert_refused_as_not_yours(send(partner_caller, payload, headers))
    foreign.refresh_from_db()
    assert (foreign.online, foreign.last_seen_at, foreign.state_changed_at) == (False, None, None)


def test_event_for_an_unknown_device_is_refused(partner_caller, device):
    payload, headers = signed(partner_caller.webhook_secret, "device.offline", {"device_ref": "no-such-device"})
    assert_refused_as_not_yours(send(partner_caller, payload, headers))


def test_device_event_naming_no_device_is_refused(partner_caller, device):
    payload, headers = signed(partner_caller.webhook_secret, "device.online", {})
    assert_refused_as_not_yours(send(partner_caller, payload, headers))


def test_door_opened_at_another_partners_device_is_refused_and_notifies_nobody(partner_caller, device, dev_pki):
    other = make_partner_caller(dev_pki["smarthome-client.pem"])
    foreign = factories.device(building_=device.building, partner_=other.partner)
    resident = factories.resident(unit_=factories.unit(building_=device.building))
    factories.face_enrolment(resident_=resident, partner_=partner_caller.partner, subject_id="subj_foreign",
                             status="active")
    payload, headers = signed(partner_caller.webhook_secret, "door.opened",
                              {"device_ref": foreign.partner_device_ref, "subject_id": "subj_foreign"})
    assert_refused_as_not_yours(send(partner_caller, payload, headers))
    assert not Notification.objects.exists()


def _state_event(caller, device, event_type, at):
    return signed(caller.webhook_secret, event_type, {"device_ref": device.partner_device_ref}, at=at)


@pytest.mark.parametrize(("newer_event", "older_event", "online"), [
    ("device.online", "device.offline", True),
    ("device.offline", "device.online", False),
])
def test_a_late_older_state_event_does_not_reverse_a_newer_one(partner_caller, device, newer_event, older_event,
                                                               online):
    now = datetime.datetime.now(datetime.UTC)
    newer, older = now - datetime.timedelta(seconds=5), now - datetime.timedelta(seconds=60)
    assert send(partner_caller, *_state_event(partner_caller, device, newer_event, newer)).status_code == 200
    late = send(partner_caller, *_state_event(partner_caller, device, older_event, older))
    assert late.status_code == 200  # acknowledged (the partner must not resend it), not applied
    device.refresh_from_db()
    assert (device.online, device.last_seen_at, device.state_changed_at) == (online, newer, newer)


def test_events_in_order_apply_in_order(partner_caller, device):
    now = datetime.datetime.now(datetime.UTC)
    first, second = now - datetime.timedelta(seconds=60), now - datetime.timedelta(seconds=5)
    assert send(partner_caller, *_state_event(partner_caller, device, "device.online", first)).status_code == 200
    assert send(partner_caller, *_state_event(partner_caller, device, "device.offline", second)).status_code == 200
    device.refresh_from_db()
    assert (device.online, device.state_changed_at) == (False, second)


def test_signed_but_malformed_event_is_400(partner_caller, device):
    payload, headers = signed(partner_caller.webhook_secret, "", {}, body="not json at all")
    response = send(partner_caller, payload, headers)
    assert response.status_code == 400
    assert not InboundWebhook.objects.exists()


@pytest.mark.parametrize("timestamp", [
    "2026-13-45T10:00:00Z",  # the shape of a date-time, but no such day: was a 500
    "2026-11-30T10:00:00",  # no UTC offset: compared with stored aware times, was a 500
    "yesterday", 1764496800,
])
def test_an_event_timestamp_that_is_not_an_rfc3339_date_time_is_400(partner_caller, device, timestamp):
    first = send(partner_caller, *online(partner_caller, device))
    assert first.status_code == 200, first.content
    data = {"device_ref": device.partner_device_ref}
    body = json.dumps({"type": "device.offline", "timestamp": timestamp, "data": data})
    response = send(partner_caller, *signed(partner_caller.webhook_secret, "", {}, body=body))
    assert response.status_code == 400, response.content
    assert [error["field"] for error in response.json()["errors"]] == ["timestamp"]
    assert InboundWebhook.objects.count() == 1
    device.refresh_from_db()
    assert device.online


def test_door_opened_notifies_the_resident(partner_caller, device):
    resident = factories.resident(unit_=factories.unit(building_=device.building))
    factories.face_enrolment(resident_=resident, partner_=partner_caller.partner, subject_id="subj_abc",
                             status="active")
    payload, headers = signed(partner_caller.webhook_secret, "door.opened",
                              {"device_ref": device.partner_device_ref, "subject_id": "subj_abc"})
    assert send(partner_caller, payload, headers).status_code == 200
    notification = Notification.objects.get(resident=resident)
    assert (notification.kind, notification.device_id) == ("door_opened", device.pk)


def test_events_need_the_events_scope(partner_caller, device):
    narrow = partner_caller.fetch_token(scope="access:decide")["access_token"]
    response = send(partner_caller, *online(partner_caller, device), token=narrow)
    assert response.status_code == 403
    assert not InboundWebhook.objects.exists()


def test_events_need_the_certificate(partner_caller, device):
    assert send(partner_caller, *online(partner_caller, device), cert=None).status_code == 401
    assert not InboundWebhook.objects.exists()
