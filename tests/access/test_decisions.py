"""POST /partner/v1/access-decisions: every allow and deny reason, 404 for foreign devices, 400 for bad input."""

import datetime
import uuid

import pytest
from django.utils import timezone

from access.models import AccessGrant, GuestPass, Residency, Resident, VehiclePlateToken
from access.reasons import DENY_REASONS, Reason
from access.schedules import DAYS
from access.services.grants import grant_suspend
from access.services.plate_tokens import plate_tokens_rebuild
from audit.models import AuditEvent
from consent.models import Consent
from core.security.identifiers import pseudonymous_ref
from partners.models import PartnerContract
from tests import factories
from tests.access.api.conftest import api as resident_api
from tests.access.decision_scene import Scene, build_scene
from tests.partners import partner_api
from tests.partners.partner_api import make_partner_caller

pytestmark = pytest.mark.django_db
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller

URL = "/partner/v1/access-decisions"


@pytest.fixture
def scene(partner_caller) -> Scene:
    return build_scene(partner_caller)


def ask(scene: Scene, *, kind="plate", token=None, device_ref=None, **kwargs):
    body = {
        "device_ref": device_ref or scene.device.partner_device_ref,
        "credential": {"type": kind, "token": token or (scene.plate_token if kind == "plate" else scene.subject_id)},
        "request_id": "req-" + uuid.uuid4().hex[:8],
        "observed_at": timezone.now().isoformat(),
    }
    return scene.caller.post(URL, body, **kwargs)


def decided(scene, **kwargs) -> dict:
    response = ask(scene, **kwargs)
    assert response.status_code == 200, response.content
    answer = response.json()
    assert set(answer) == {"decision", "reason", "decision_id", "ttl_s"}  # nothing personal
    return answer


def assert_denied(scene, reason: Reason, **kwargs):
    answer = decided(scene, **kwargs)
    assert (answer["decision"], answer["reason"]) == ("deny", reason.value)
    event = AuditEvent.objects.filter(action="access.decision").latest("id")
    assert (event.outcome, event.reason, event.partner_id) == ("denied", reason.value, scene.caller.partner.pk)


def test_plate_of_a_resident_with_a_grant_is_allowed(scene):
    answer = decided(scene)
    assert (answer["decision"], answer["reason"]) == ("allow", "granted")
    assert answer["ttl_s"] > 0
    event = AuditEvent.objects.get(action="access.decision")
    assert event.outcome == "success"
    assert event.device_ref == scene.device.partner_device_ref
    assert event.building_id == scene.device.building_id
    assert event.object_ref == f"decision:{answer['decision_id']}"
    assert event.latency_ms is not None


def test_face_with_consent_is_allowed(scene):
    assert decided(scene, kind="face")["decision"] == "allow"


def test_every_deny_reason_is_covered():
    covered = {Reason.UNKNOWN_CREDENTIAL, Reason.CONTRACT_NOT_COVERING, Reason.OPERATION_NOT_ALLOWED,
               Reason.NO_CONSENT, Reason.RESIDENT_SUSPENDED, Reason.NO_GRANT, Reason.GRANT_SUSPENDED,
               Reason.GRANT_NOT_VALID, Reason.RESIDENCY_ENDED, Reason.OUTSIDE_SCHEDULE}
    assert covered == set(DENY_REASONS)


def test_unknown_plate(scene):
    assert_denied(scene, Reason.UNKNOWN_CREDENTIAL, token="x" * 43)


def test_unknown_face_subject(scene):
    assert_denied(scene, Reason.UNKNOWN_CREDENTIAL, kind="face", token="subj_unknown_0000")


def test_plate_token_of_another_partner_is_unknown(scene, dev_pki):
    other = make_partner_caller(dev_pki["smarthome-client.pem"])
    factories.contract(partner_=other.partner, company_=scene.device.building.company,
                       buildings=[scene.device.building])
    plate_tokens_rebuild(partner_id=other.partner.pk)
    foreign_token = VehiclePlateToken.objects.get(partner=other.partner).token
    assert foreign_token != scene.plate_token
    assert_denied(scene, Reason.UNKNOWN_CREDENTIAL, token=foreign_token)


def test_contract_not_covering(scene):
    PartnerContract.objects.update(valid_until=timezone.now())
    assert_denied(scene, Reason.CONTRACT_NOT_COVERING)


def test_contract_not_allowing_plates(scene):
    PartnerContract.objects.update(allows_plate=False)
    assert_denied(scene, Reason.OPERATION_NOT_ALLOWED)


def test_contract_not_allowing_faces(scene):
    PartnerContract.objects.update(allows_face=False)
    assert_denied(scene, Reason.OPERATION_NOT_ALLOWED, kind="face")


def test_face_without_active_consent(scene):
    Consent.objects.update(revoked_at=timezone.now(), revoked_reason="resident")
    assert_denied(scene, Reason.NO_CONSENT, kind="face")


def test_suspended_resident(scene):
    Resident.objects.filter(pk=scene.resident.pk).update(suspended=True)
    assert_denied(scene, Reason.RESIDENT_SUSPENDED)


def test_no_grant(scene):
    AccessGrant.objects.all().delete()
    assert_denied(scene, Reason.NO_GRANT)


def test_grant_for_another_device_only(scene):
    AccessGrant.objects.all().delete()
    other_device = factories.device(building_=scene.device.building, partner_=scene.caller.partner)
    factories.grant(resident_=scene.resident, building_=None, device=other_device)
    assert_denied(scene, Reason.NO_GRANT)


def test_grant_for_this_device_is_allowed(scene):
    AccessGrant.objects.all().delete()
    factories.grant(resident_=scene.resident, building_=None, device=scene.device)
    assert decided(scene)["decision"] == "allow"


def test_suspended_grant(scene):
    grant_suspend(grant=scene.grant)
    assert_denied(scene, Reason.GRANT_SUSPENDED)


def test_grant_not_yet_valid(scene):
    AccessGrant.objects.update(valid_from=timezone.now() + datetime.timedelta(days=1))
    assert_denied(scene, Reason.GRANT_NOT_VALID)


def test_expired_grant(scene):
    AccessGrant.objects.update(valid_from=timezone.now() - datetime.timedelta(days=2),
                               valid_until=timezone.now() - datetime.timedelta(seconds=1))
    assert_denied(scene, Reason.GRANT_NOT_VALID)


def test_grant_of_an_ended_residency(scene):
    AccessGrant.objects.all().delete()
    residency = Residency.objects.get(resident=scene.resident)
    factories.grant(resident_=None, residency=residency, building_=scene.device.building)
    assert decided(scene)["decision"] == "allow"
    today = timezone.localdate()
    Residency.objects.update(valid_from=today - datetime.timedelta(days=30), valid_until=today)
    assert_denied(scene, Reason.RESIDENCY_ENDED)


def test_outside_schedule(scene):
    today = DAYS[timezone.now().astimezone(scene.device.building.tz).weekday()]
    AccessGrant.objects.update(schedule={day: [["00:00", "24:00"]] for day in DAYS if day != today})
    assert_denied(scene, Reason.OUTSIDE_SCHEDULE)
    AccessGrant.objects.update(schedule={today: [["00:00", "24:00"]]})
    assert decided(scene)["decision"] == "allow"


def test_the_best_grant_wins(scene):
    grant_suspend(grant=scene.grant)
    factories.grant(resident_=scene.resident, building_=scene.device.building)
    assert decided(scene)["reason"] == "granted"


def test_guest_pass_one_time(scene):
    now = timezone.now()
    GuestPass.objects.create(resident=scene.resident, device=scene.device, plate="А001АА77", plate_token="g" * 43,
                             valid_from=now - datetime.timedelta(minutes=1),
                             valid_until=now + datetime.timedelta(hours=1),
                             one_time=True)
    answer = decided(scene, token="g" * 43)
    assert (answer["decision"], answer["reason"], answer["ttl_s"]) == ("allow", "guest_pass", 0)
    assert GuestPass.objects.get().used_at is not None
    assert_denied(scene, Reason.UNKNOWN_CREDENTIAL, token="g" * 43)


def test_foreign_device_is_404(scene, dev_pki):
    other = make_partner_caller(dev_pki["smarthome-client.pem"])
    foreign = factories.device(building_=scene.device.building, partner_=other.partner)
    response = ask(scene, device_ref=foreign.partner_device_ref)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/unknown-device")
    assert not AuditEvent.objects.filter(action="access.decision").exists()


def test_unknown_device_is_404(scene):
    assert ask(scene, device_ref="no-such-device").status_code == 404


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda b: b.pop("device_ref"), "device_ref"),
    (lambda b: b.pop("credential"), "credential"),
    (lambda b: b["credential"].update(type="iris"), "credential.type"),
    (lambda b: b["credential"].update(token="has spaces and ünicode"), "credential.token"),
    (lambda b: b.update(observed_at="yesterday"), "observed_at"),
    (lambda b: b.update(request_id="x" * 200), "request_id"),
    (lambda b: b.update(device_ref={"nested": 1}), "device_ref"),
    (lambda b: b.update(credential="plate"), "credential"),
])
def test_malformed_input_is_400_with_field(scene, mutate, field):
    body = {"device_ref": scene.device.partner_device_ref, "credential": {"type": "plate", "token": scene.plate_token},
            "request_id": "req-1", "observed_at": timezone.now().isoformat()}
    mutate(body)
    response = scene.caller.post(URL, body)
    assert response.status_code == 400, response.content
    assert field in [error["field"] for error in response.json()["errors"]]
    assert not AuditEvent.objects.filter(action="access.decision").exists()


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", "null", '"string"', "{"])
def test_non_object_bodies_are_400(scene, raw):
    response = scene.caller.client.post(URL, raw, content_type="application/json", **scene.caller.headers())
    assert response.status_code == 400, response.content


def test_the_residents_history_shows_decisions_about_their_car_face_and_guests_only(scene):
    """A decision names its subject (the resident's pseudonymous ref): their history lists the
    decisions about their car, their face and their guest's pass, and nobody else's."""
    building = scene.device.building
    other = factories.resident(unit_=factories.unit(building_=building))
    factories.grant(resident_=other, building_=building)
    their_token = VehiclePlateToken.objects.get(vehicle=factories.vehicle(resident_=other),
                                                partner=scene.caller.partner).token
    GuestPass.objects.create(resident=scene.resident, device=scene.device, plate="А001АА77", plate_token="g" * 43,
                             valid_from=timezone.now() - datetime.timedelta(minutes=1),
                             valid_until=timezone.now() + datetime.timedelta(hours=1))
    car = decided(scene)
    face = decided(scene, kind="face")
    guest = decided(scene, token="g" * 43)
    decided(scene, token=their_token)
    decided(scene, token="unknownplatetoken000")
    AccessGrant.objects.filter(pk=scene.grant.pk).update(suspended=True)
    denied = decided(scene)
    assert [a["reason"] for a in (car, face, guest, denied)] == ["granted", "granted", "guest_pass", "grant_suspended"]

    def decisions_in_history(resident):
        events = resident_api(resident.user, "history:read").get("/api/v1/history").json()["results"]
        return [(e["action"], e["object_type"], e["reason"], e["outcome"], e["device_ref"]) for e in events]

    ref = scene.device.partner_device_ref
    assert decisions_in_history(scene.resident) == [
        ("access.decision", "access_decision", "grant_suspended", "denied", ref),
        ("access.decision", "access_decision", "guest_pass", "success", ref),
        ("access.decision", "access_decision", "granted", "success", ref),
        ("access.decision", "access_decision", "granted", "success", ref),
    ]
    assert decisions_in_history(other) == [("access.decision", "access_decision", "granted", "success", ref)]
    # the event names the resident only by a pseudonymous ref
    event = AuditEvent.objects.filter(action="access.decision").order_by("id").first()
    assert event.subject_ref == pseudonymous_ref("resident", scene.resident.pk)
    unknown = AuditEvent.objects.get(action="access.decision", reason="unknown_credential")
    assert unknown.subject_ref == ""
