"""Deleting a resident (access.resident_delete, the admin's delete): the personal rows
go, the partner is told to forget every credential, consents are revoked, the evidence stays."""

import datetime

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.utils import timezone

from access.models import AccessGrant, GuestPass, Residency, Resident, Vehicle, VehiclePlateToken
from access.reasons import Reason
from access.services.decisions import access_decide
from access.services.residents import resident_delete
from audit.models import AuditEvent
from consent.models import Consent, FaceEnrolment
from consent.services import subject_id_for
from core.security.identifiers import pseudonymous_ref
from core.security.roles import PROPERTY_MANAGER
from partners.models import OutboxMessage
from tests import factories
from tests.access.api.conftest import api
from tests.admin.conftest import login_verified

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def estate():
    """Partner P over building A; a resident with a flat, a grant, a car, a guest pass and an
    enrolled face; a neighbour in the same building with a car (never affected)."""
    building = factories.building()
    partner = factories.partner()
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    gate = factories.device(building_=building, partner_=partner, kind="barrier", partner_device_ref="gate-a")
    resident = factories.resident(unit_=factories.unit(building_=building), full_name="Петров Пётр Петрович",
                                  phone="+79161234567")
    factories.grant(resident_=resident, building_=building)
    car = factories.vehicle(resident_=resident)
    now = timezone.now()
    GuestPass.objects.create(resident=resident, device=gate, plate="А123ВС77", plate_token="guest-token-1",
                             valid_from=now, valid_until=now + datetime.timedelta(days=1))
    subject = subject_id_for(partner_id=partner.pk, resident_id=resident.pk)
    consent = factories.face_enrolment(resident_=resident, partner_=partner, subject_id=subject).consent
    neighbour = factories.resident(unit_=factories.unit(building_=building))
    factories.grant(resident_=neighbour, building_=building)
    neighbours_car = factories.vehicle(resident_=neighbour)
    return {
        "building": building, "partner": partner, "gate": gate, "resident": resident, "car": car,
        "consent": consent, "subject": subject, "neighbour": neighbour, "neighbours_car": neighbours_car,
        "plate": VehiclePlateToken.objects.get(vehicle=car, partner=partner).token,
        "mark": OutboxMessage.objects.order_by("-pk").values_list("pk", flat=True).first() or 0,
    }


def new_messages(estate, operation):
    return list(OutboxMessage.objects.filter(pk__gt=estate["mark"], operation=operation).order_by("pk"))


def test_deleting_a_resident_erases_their_rows_and_tells_the_partner(estate):
    resident, partner = estate["resident"], estate["partner"]
    user_id, resident_id = resident.user_id, resident.pk
    token = api(resident.user)
    assert token.get("/api/v1/devices").status_code == 200

    resident_delete(resident=resident)

    assert not Resident.objects.filter(pk=resident_id).exists()
    for model in (Residency, AccessGrant, Vehicle, GuestPass):
        assert not model.objects.filter(resident_id=resident_id).exists(), model
    assert not VehiclePlateToken.objects.filter(vehicle_id=estate["car"].pk).exists()
    assert not get_user_model().objects.filter(pk=user_id).exists()
    assert token.get("/api/v1/devices").status_code == 401  # the app's tokens went with the account

    consent = Consent.objects.get(pk=estate["consent"].pk)  # evidence stays, revoked
    assert (consent.revoked_at is not None, consent.revoked_reason) == (True, "deleted")
    assert FaceEnrolment.objects.get(subject_id=estate["subject"]).status == FaceEnrolment.Status.DELETING
    assert [m.payload["subject"] for m in new_messages(estate, "face_delete")] == [estate["subject"]]
    removed = {(entry["type"], entry["token"]) for message in new_messages(estate, "allowlist_patch")
               for entry in message.payload["removals"]}
    assert {("plate", estate["plate"]), ("face", estate["subject"])} <= removed
    assert all(message.partner_id == partner.pk for message in new_messages(estate, "allowlist_patch"))

    event = AuditEvent.objects.get(action="admin.change", object_type="resident", reason="deleted")
    assert (event.object_ref, event.company_id) == (pseudonymous_ref("resident", resident_id),
                                                    estate["building"].company_id)
    assert "9161234567" not in str(event.__dict__)
    assert "Петров" not in str(event.__dict__)


def test_the_deleted_residents_car_is_unknown_at_the_barrier_and_the_neighbour_unaffected(estate):
    partner = estate["partner"]
    neighbours_plate = VehiclePlateToken.objects.get(vehicle=estate["neighbours_car"], partner=partner).token

    def decide(token):
        return access_decide(partner=partner, device_ref="gate-a", credential_type="plate",
                             credential_token=token).reason

    assert decide(estate["plate"]) == Reason.GRANTED
    resident_delete(resident=estate["resident"])
    assert decide(estate["plate"]) == Reason.UNKNOWN_CREDENTIAL
    assert decide(neighbours_plate) == Reason.GRANTED
    patched_tokens = {entry["token"] for message in new_messages(estate, "allowlist_patch")
                      for entry in message.payload["upserts"] + message.payload["removals"]}
    assert neighbours_plate not in patched_tokens


def test_a_failure_midway_deletes_nothing(estate, monkeypatch):
    import access.services.residents as services_module

    def broken(**kwargs):
        raise RuntimeError("outbox down")

    monkeypatch.setattr(services_module, "allowlist_resident_changed", broken)
    with pytest.raises(RuntimeError):
        resident_delete(resident=estate["resident"])
    assert Resident.objects.filter(pk=estate["resident"].pk).exists()
    assert Consent.objects.get(pk=estate["consent"].pk).revoked_at is None
    assert new_messages(estate, "face_delete") == []
    assert not AuditEvent.objects.filter(object_type="resident", reason="deleted").exists()


def test_a_staff_account_that_is_also_a_resident_is_kept(estate):
    user = estate["resident"].user
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    resident_delete(resident=estate["resident"])
    assert get_user_model().objects.filter(pk=user.pk).exists()
    assert not Resident.objects.filter(pk=estate["resident"].pk).exists()


def test_the_admins_delete_goes_through_the_service(client, estate):
    manager = factories.staff_user(company_=estate["building"].company, role=PROPERTY_MANAGER)
    login_verified(client, manager)
    resident = estate["resident"]
    url = f"/admin/access/resident/{resident.pk}/delete/"
    assert client.get(url).status_code == 200  # the confirmation page
    response = client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Resident.objects.filter(pk=resident.pk).exists()
    assert Consent.objects.get(pk=estate["consent"].pk).revoked_reason == "deleted"
    assert new_messages(estate, "face_delete")
    event = AuditEvent.objects.get(object_type="resident", reason="deleted")
    assert event.actor_kind == "staff"
    assert not LogEntry.objects.filter(object_repr__contains="Петров").exists()


def test_another_companys_manager_cannot_delete_the_resident(client, estate):
    manager = factories.staff_user(company_=factories.company(), role=PROPERTY_MANAGER)
    login_verified(client, manager)
    resident = estate["resident"]
    assert client.post(f"/admin/access/resident/{resident.pk}/delete/", {"post": "yes"}).status_code == 404
    bulk = client.post("/admin/access/resident/", {"action": "delete_selected", "_selected_action": [resident.pk],
                                                   "post": "yes"})
    assert bulk.status_code in (200, 302)
    assert Resident.objects.filter(pk=resident.pk).exists()
    assert Consent.objects.get(pk=estate["consent"].pk).revoked_at is None
    assert not AuditEvent.objects.filter(object_type="resident", reason="deleted").exists()
