"""Every partner call a resident causes names the resident and the resident's request, so an
audit export alone answers "who caused this call"."""

from __future__ import annotations

import json
import uuid

import pytest
from django.utils import timezone

from access.models import OpenRequest
from audit.actions import Action, ActorKind, Outcome
from audit.export import export_plan, export_stream
from audit.models import AuditEvent
from audit.sealing import audit_seal
from audit.selectors import EventFilter
from core.security.identifiers import user_ref
from partners.models import OutboxMessage
from partners.outbox.services import outbox_deliver
from tests.access.api.conftest import api

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_remote_open_names_the_resident_and_their_request_in_the_partner_call_event(estate):
    response = api(estate.resident.user).post(f"/api/v1/devices/{estate.door.pk}/open",
                                              HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()), HTTP_X_REQUEST_ID="app-req-41")
    assert response.status_code == 200, response.json()
    call = AuditEvent.objects.get(action=Action.PARTNER_OPEN)
    assert (call.actor_kind, call.actor_ref) == (ActorKind.RESIDENT, user_ref(estate.resident.user))
    assert call.origin_request_id == "app-req-41"
    assert call.request_id == OpenRequest.objects.get().partner_request_id  # what the partner's log holds
    resident_event = AuditEvent.objects.get(action=Action.RESIDENT_OPEN)
    assert resident_event.request_id == call.origin_request_id

    audit_seal()
    company = estate.door.building.company_id
    body = b"".join(export_stream(plan=export_plan(EventFilter(company_ids=frozenset({company}))), fmt="jsonl"))
    rows = [json.loads(line) for line in body.decode().splitlines()[:-1]]
    [row] = [r for r in rows if r["action"] == Action.PARTNER_OPEN]
    assert (row["actor_ref"], row["origin_request_id"]) == (user_ref(estate.resident.user), "app-req-41")


def test_a_video_session_names_the_resident_and_their_request(estate):
    estate.sandbox.control.put_device(estate.camera.partner_device_ref, online=True)
    response = api(estate.resident.user, "video:view").post(f"/api/v1/devices/{estate.camera.pk}/video-sessions",
                                                            {}, format="json", HTTP_X_REQUEST_ID="app-req-42")
    assert response.status_code == 201, response.json()
    call = AuditEvent.objects.get(action=Action.PARTNER_WEBRTC_SESSION)
    assert (call.actor_kind, call.actor_ref, call.origin_request_id) == (
        ActorKind.RESIDENT, user_ref(estate.resident.user), "app-req-42")


def test_a_change_the_outbox_delivers_later_names_the_request_that_caused_it(estate):
    estate.sandbox.control.down()  # the request's own delivery attempt fails: a worker delivers it later
    response = api(estate.resident.user).post("/api/v1/vehicles", {"plate": "А123ВС77"}, format="json",
                                              HTTP_X_REQUEST_ID="app-req-43")
    assert response.status_code == 201, response.json()
    message = OutboxMessage.objects.get(operation="allowlist_patch")
    assert (message.status, message.origin_request_id) == ("pending", "app-req-43")
    estate.sandbox.control.up()
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    assert outbox_deliver(message_id=message.pk) == "delivered"  # outside any request, as a worker does

    call = AuditEvent.objects.get(action=Action.PARTNER_ALLOWLIST_DELTA, outcome=Outcome.SUCCESS)
    assert call.origin_request_id == "app-req-43"
    delivered = AuditEvent.objects.get(action=Action.OUTBOX_DELIVERED, object_ref=f"outbox:{message.pk}")
    assert delivered.origin_request_id == "app-req-43"
    # the full lists the site's contract pushed when the fixture was set up: nobody's request
    assert set(AuditEvent.objects.filter(action=Action.PARTNER_ALLOWLIST_FULL)
               .values_list("origin_request_id", flat=True)) <= {""}


def test_a_partner_call_nobody_caused_stays_the_systems(estate):
    from partners.client import delete_face, partner_connection_for

    delete_face(partner_connection_for(estate.partner), subject="sub_system", idempotency_key="sys-1")
    call = AuditEvent.objects.get(action=Action.PARTNER_FACE_DELETE)
    assert (call.actor_kind, call.actor_ref, call.origin_request_id) == (ActorKind.SYSTEM, "", "")
