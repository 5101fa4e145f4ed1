"""GET /api/v1/me/data-export: every section about the resident, nobody else's data, no secret,
token or ciphertext (sections come from consent.data_export's registry, filled by each app)."""

from __future__ import annotations

import datetime
import json
import re

import pytest
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from access.models import GuestPass, OpenRequest, VehiclePlateToken
from access.services.decisions import access_decide
from access.services.guest_passes import guest_pass_create, guest_pass_revoke
from access.services.notifications import notification_create
from audit.actions import Action
from audit.models import AuditEvent
from consent.data_export import data_export_section_register, data_export_sections
from consent.models import DeletionReceipt
from core.api.schema import api_schema
from core.security.identifiers import pseudonymous_ref, user_ref
from partners.selectors import current_credentials
from tests import factories
from tests.consent.conftest import api_for

pytestmark = pytest.mark.django_db

SECTIONS = {"resident", "residencies", "grants", "vehicles", "guest_passes", "notifications", "remote_opens",
            "history", "consents", "consent_texts", "face_enrolments", "deletion_receipts"}


def person(building, partner, barrier, n: int) -> dict:
    resident = factories.resident(unit_=factories.unit(building_=building), full_name=f"Житель Номер{n}",
                                  phone=f"+7999000000{n}", email=f"person{n}@example.ru")
    grant = factories.grant(resident_=resident, building_=building)
    vehicle = factories.vehicle(resident_=resident, plate=f"А{n}{n}{n}ВС77")
    guest = guest_pass_create(resident=resident, device=barrier, plate=f"К{n}{n}{n}МН99", label=f"гость{n}",
                              actor=resident.user)
    notification = notification_create(resident_id=resident.pk, kind="guest.arrived", device_id=barrier.pk,
                                        occurred_at=timezone.now(), data={"guest_pass_id": guest.pk})
    enrolment = factories.face_enrolment(resident_=resident, partner_=partner)
    receipt = DeletionReceipt.objects.create(partner=partner, subject_id=enrolment.subject_id,
                                             deletion_id=f"deletion-{n}", outbox_message_id=1000 + n)
    opened = OpenRequest.objects.create(user=resident.user, idempotency_key=f"idem-key-{n}-secretish",
                                        device=barrier, partner_request_id=f"partner-req-{n}-abcdef", result="opened")
    plate_token = VehiclePlateToken.objects.get(vehicle=vehicle, partner=partner).token
    decision = access_decide(partner=partner, device_ref=barrier.partner_device_ref, credential_type="plate",
                             credential_token=plate_token, source_ip="198.51.100.7")
    return {"resident": resident, "grant": grant, "vehicle": vehicle, "guest": guest, "notification": notification,
            "enrolment": enrolment, "receipt": receipt, "opened": opened, "plate_token": plate_token,
            "decision": decision}


@pytest.fixture
def world():
    building = factories.building()
    partner = factories.partner()
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    barrier = factories.device(building_=building, partner_=partner, kind="barrier")
    mine, theirs = person(building, partner, barrier, 1), person(building, partner, barrier, 2)
    guest_pass_revoke(guest_pass=mine["guest"], actor=mine["resident"].user)
    return {"partner": partner, "building": building, "barrier": barrier, "mine": mine, "theirs": theirs}


def export(resident):
    response = api_for(resident.user, scopes="history:read").get("/api/v1/me/data-export")
    assert response.status_code == 200, response.content
    assert response["Content-Disposition"] == 'attachment; filename="my-data.json"'
    return response


def test_every_section_holds_the_residents_data(world):
    mine, building, barrier = world["mine"], world["building"], world["barrier"]
    resident = mine["resident"]
    data = export(resident).json()
    assert set(data) == SECTIONS
    assert {s.name for s in data_export_sections()} == SECTIONS

    assert data["resident"]["full_name"] == "Житель Номер1"
    assert (data["resident"]["phone"], data["resident"]["email"]) == ("+79990000001", "person1@example.ru")
    assert data["resident"]["company"] == {"id": building.company_id, "name": building.company.name}
    assert data["resident"]["username"] == resident.user.username
    assert [(r["building"]["id"], r["kind"]) for r in data["residencies"]] == [(building.pk, "owner")]
    assert [g["id"] for g in data["grants"]] == [mine["grant"].pk]
    assert [(v["id"], v["plate"]) for v in data["vehicles"]] == [(mine["vehicle"].pk, "A111BC77")]
    assert [(p["id"], p["plate"], p["label"], p["status"]) for p in data["guest_passes"]] == [
        (mine["guest"].pk, "K111MH99", "гость1", "revoked")]
    assert [(n["id"], n["kind"], n["data"]) for n in data["notifications"]] == [
        (mine["notification"].pk, "guest.arrived", {"guest_pass_id": mine["guest"].pk})]
    assert [(o["id"], o["device"]["id"], o["result"]) for o in data["remote_opens"]] == [
        (mine["opened"].pk, barrier.pk, "opened")]
    actions = [(e["action"], e["reason"]) for e in data["history"]]
    assert actions == [("resident.guest_pass_create", "created"), ("access.decision", "granted"),
                       ("resident.guest_pass_revoke", "revoked")]
    decision = next(e for e in data["history"] if e["action"] == "access.decision")
    assert decision["source_ip"] == ""  # the partner's address, not the resident's
    consent = mine["enrolment"].consent
    assert [(c["id"], c["text_sha256"]) for c in data["consents"]] == [(consent.pk, consent.text.sha256)]
    assert data["consent_texts"][consent.text.sha256]["body"] == consent.text.body
    assert [(e["id"], e["status"]) for e in data["face_enrolments"]] == [(mine["enrolment"].pk, "delivered")]
    assert [r["deletion_id"] for r in data["deletion_receipts"]] == ["deletion-1"]
    assert AuditEvent.objects.filter(action=Action.RESIDENT_DATA_EXPORT).count() == 1


def test_no_other_residents_data(world):
    theirs = world["theirs"]
    text = export(world["mine"]["resident"]).content.decode()
    data = json.loads(text)
    for value in ("Житель Номер2", "+79990000002", "person2@example.ru", "A222BC77", "K222MH99", "гость2",
                  "deletion-2", theirs["resident"].user.username):
        assert value not in text, value
    ids = {section: {row["id"] for row in data[section]} for section in
           ("grants", "vehicles", "guest_passes", "notifications", "remote_opens", "consents", "face_enrolments",
            "history")}
    assert theirs["grant"].pk not in ids["grants"]
    assert theirs["vehicle"].pk not in ids["vehicles"]
    assert theirs["guest"].pk not in ids["guest_passes"]
    assert theirs["notification"].pk not in ids["notifications"]
    assert theirs["opened"].pk not in ids["remote_opens"]
    assert theirs["enrolment"].consent_id not in ids["consents"]
    assert theirs["enrolment"].pk not in ids["face_enrolments"]
    their_events = set(AuditEvent.objects.filter(
        Q(actor_ref=user_ref(theirs["resident"].user))
        | Q(subject_ref=pseudonymous_ref("resident", theirs["resident"].pk))).values_list("id", flat=True))
    assert len(their_events) == 2  # their guest pass and the decision about their car
    assert not their_events & ids["history"]


def test_no_secret_token_or_ciphertext(world):
    mine, partner = world["mine"], world["partner"]
    text = export(mine["resident"]).content.decode()
    credentials = current_credentials(partner=partner)
    secrets = [mine["plate_token"], GuestPass.objects.get(pk=mine["guest"].pk).plate_token,
               mine["enrolment"].subject_id, mine["opened"].idempotency_key, mine["opened"].partner_request_id,
               mine["decision"].decision_id, credentials.client_secret, credentials.webhook_secret,
               credentials.plate_token_key, credentials.subject_key]
    for secret in secrets:
        assert secret not in text
    with connection.cursor() as cursor:
        cursor.execute("SELECT full_name, phone, email FROM access_resident WHERE id = %s", [mine["resident"].pk])
        stored = cursor.fetchone()
        cursor.execute("SELECT plate FROM access_vehicle WHERE id = %s", [mine["vehicle"].pk])
        stored += cursor.fetchone()
    for ciphertext in stored:
        assert ciphertext.startswith("v1:")
        assert ciphertext not in text
    assert not re.search(r"v1:[A-Za-z0-9_-]+:[A-Za-z0-9_-]{20,}", text)


def test_sections_come_from_the_registry_and_the_schema_lists_them():
    schema = api_schema()
    operation = schema["paths"]["/api/v1/me/data-export"]["get"]
    assert {"200", "401", "403"} <= set(operation["responses"])
    properties = schema["components"]["schemas"]["DataExport"]["properties"]
    assert set(properties) == SECTIONS
    assert all(p.get("description") for p in properties.values())
    with pytest.raises(ValueError, match="already provided"):
        data_export_section_register(name="vehicles", description="again", provider=lambda **_: [])


def test_guest_pass_in_export_keeps_its_status_over_time(world):
    mine = world["mine"]
    GuestPass.objects.filter(pk=mine["guest"].pk).update(
        revoked_at=None, valid_until=timezone.now() - datetime.timedelta(seconds=1),
        valid_from=timezone.now() - datetime.timedelta(days=1))
    assert export(mine["resident"]).json()["guest_passes"][0]["status"] == "expired"
