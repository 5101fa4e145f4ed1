"""The resident's app, the partner's decisions and the partner's offline allowlist give the same
answer for the same resident at the same device in every state of the rules (access.policy).

One resident lives in a building (a residency) and holds a building-wide grant through it; the
building's barrier belongs to a partner whose contract allows every operation; the resident has
a car (plate token) and a consented face enrolment (face subject). Each state breaks one rule by
writing the row directly, then asks:

- the app: the open check the resident API runs before it calls the partner (`device_authorise`);
- the partner: an access decision for the plate token and for the face subject (`access_decide`);
- the allowlist: whether the site's list, judged as the partner's barrier judges it when we are
  unreachable (the sandbox partner's `allowlist_entry_allows`), lets the credential through now.
"""

import datetime
from dataclasses import dataclass

import pytest
from django.utils import timezone

from access.errors import RuleDenied
from access.models import AccessGrant, Device, GuestPass, Notification, Residency, Resident, VehiclePlateToken
from access.reasons import Reason
from access.schedules import DAYS
from access.services.allowlist import allowlist_entries
from access.services.decisions import GUEST_ARRIVED, access_decide
from access.services.opening import device_authorise
from audit.actions import Action
from consent.models import Consent
from consent.services import consent_revoke
from partners.models import Partner, PartnerContract
from partners.sandbox.smarthome_link import allowlist_entry_allows
from tests import factories

pytestmark = pytest.mark.django_db


@dataclass
class World:
    partner: Partner
    barrier: Device
    resident: Resident
    residency: Residency
    grant: AccessGrant
    plate_token: str
    subject_id: str
    consent: Consent


@pytest.fixture
def world() -> World:
    building = factories.building()
    partner = factories.partner()
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    barrier = factories.device(building_=building, partner_=partner, kind="barrier")
    resident = factories.resident(company_=building.company)
    residency = factories.residency(resident_=resident, unit_=factories.unit(building_=building),
                                    valid_from=timezone.localdate() - datetime.timedelta(days=400))
    grant = factories.grant(residency=residency, building_=building)
    vehicle = factories.vehicle(resident_=resident)
    token = VehiclePlateToken.objects.get(vehicle=vehicle, partner=partner).token
    enrolment = factories.face_enrolment(resident_=resident, partner_=partner, status="active",
                                         building_id=building.pk)
    return World(partner, barrier, resident, residency, grant, token, enrolment.subject_id, enrolment.consent)


def app_answer(world: World) -> str | None:
    """None if the app may open the barrier, else the resident API's reason code."""
    resident = Resident.objects.get(pk=world.resident.pk)
    device = Device.objects.select_related("building", "partner").get(pk=world.barrier.pk)
    try:
        device_authorise(user=resident.user, resident=resident, device=device, operation="open",
                         action=Action.RESIDENT_OPEN)
    except RuleDenied as denied:
        return denied.code
    return None


def partner_answer(world: World, kind: str, token: str | None = None) -> Reason:
    token = token or (world.plate_token if kind == "plate" else world.subject_id)
    return access_decide(partner=Partner.objects.get(pk=world.partner.pk), device_ref=world.barrier.partner_device_ref,
                         credential_type=kind, credential_token=token).reason


def listed(world: World, kind: str) -> bool:
    """Whether the partner's offline allowlist of the site lets the credential through the barrier now."""
    token = world.plate_token if kind == "plate" else world.subject_id
    entries = allowlist_entries(partner_id=world.partner.pk, building_id=world.barrier.building_id)
    return any(
        entry["type"] == kind and entry["token"] == token and world.barrier.partner_device_ref in entry["device_refs"]
        and allowlist_entry_allows(entry, timezone.now())
        for entry in entries
    )


def _another_day(world: World) -> str:
    local = timezone.now().astimezone(world.barrier.building.tz)
    return DAYS[(local.weekday() + 3) % 7]


def _break(world: World, state: str) -> None:
    now = timezone.now()
    grants = AccessGrant.objects.filter(pk=world.grant.pk)
    if state == "grant_suspended":
        grants.update(suspended=True)
    elif state == "grant_expired":
        grants.update(valid_from=now - datetime.timedelta(days=10), valid_until=now - datetime.timedelta(days=1))
    elif state == "grant_not_yet_valid":
        grants.update(valid_from=now + datetime.timedelta(days=1))
    elif state == "residency_ended":
        Residency.objects.filter(pk=world.residency.pk).update(
            valid_until=timezone.localdate() - datetime.timedelta(days=1))
    elif state == "outside_schedule":
        grants.update(schedule={_another_day(world): [["00:00", "24:00"]]})
    elif state == "resident_suspended":
        Resident.objects.filter(pk=world.resident.pk).update(suspended=True)
    elif state == "contract_ended":
        PartnerContract.objects.filter(partner=world.partner).update(
            valid_from=now - datetime.timedelta(days=10), valid_until=now - datetime.timedelta(seconds=1))
    elif state == "consent_revoked":
        consent_revoke(consent=world.consent)
    else:
        assert state == "in_force"


# state -> (the app's code, the partner's reason for the plate, the partner's reason for the face)
STATES = {
    "in_force": (None, Reason.GRANTED, Reason.GRANTED),
    "grant_suspended": ("grant-suspended", Reason.GRANT_SUSPENDED, Reason.GRANT_SUSPENDED),
    "grant_expired": ("grant-expired", Reason.GRANT_NOT_VALID, Reason.GRANT_NOT_VALID),
    "grant_not_yet_valid": ("grant-not-yet-valid", Reason.GRANT_NOT_VALID, Reason.GRANT_NOT_VALID),
    "residency_ended": ("residency-ended", Reason.RESIDENCY_ENDED, Reason.RESIDENCY_ENDED),
    "outside_schedule": ("outside-schedule", Reason.OUTSIDE_SCHEDULE, Reason.OUTSIDE_SCHEDULE),
    "resident_suspended": ("resident-suspended", Reason.RESIDENT_SUSPENDED, Reason.RESIDENT_SUSPENDED),
    "contract_ended": ("contract-not-covering", Reason.CONTRACT_NOT_COVERING, Reason.CONTRACT_NOT_COVERING),
    "consent_revoked": (None, Reason.GRANTED, Reason.NO_CONSENT),  # faces only: doors and plates go on
}


@pytest.mark.parametrize("state", list(STATES))
def test_app_decision_and_allowlist_agree(world, state):
    _break(world, state)
    app_code, plate_reason, face_reason = STATES[state]
    app = app_answer(world)
    plate, face = partner_answer(world, "plate"), partner_answer(world, "face")
    assert (app, plate, face) == (app_code, plate_reason, face_reason)
    assert (app is None) == plate.allows == listed(world, "plate")
    assert face.allows == listed(world, "face")


def _guest_pass(world: World, *, one_time=False, **times) -> GuestPass:
    now = timezone.now()
    return GuestPass.objects.create(
        resident=world.resident, device=world.barrier, plate="E777KX750", plate_token="guest-" + "g" * 40,
        valid_from=times.get("valid_from", now - datetime.timedelta(minutes=1)),
        valid_until=times.get("valid_until", now + datetime.timedelta(hours=1)), one_time=one_time,
    )


def test_a_guest_pass_lets_its_car_in_while_its_resident_could_pass(world):
    guest = _guest_pass(world)
    assert partner_answer(world, "plate", guest.plate_token) == Reason.GUEST_PASS
    Residency.objects.filter(pk=world.residency.pk).update(valid_until=timezone.localdate())
    assert partner_answer(world, "plate", guest.plate_token) == Reason.RESIDENCY_ENDED
    assert app_answer(world) == "residency-ended"
    assert not any(entry["token"] == guest.plate_token  # guest passes are never listed
                   for entry in allowlist_entries(partner_id=world.partner.pk, building_id=world.barrier.building_id))


def test_a_used_or_expired_guest_pass_is_unknown(world):
    one_time = _guest_pass(world, one_time=True)
    assert partner_answer(world, "plate", one_time.plate_token) == Reason.GUEST_PASS
    assert partner_answer(world, "plate", one_time.plate_token) == Reason.UNKNOWN_CREDENTIAL  # used
    GuestPass.objects.all().delete()
    now = timezone.now()
    expired = _guest_pass(world, valid_from=now - datetime.timedelta(hours=2),
                          valid_until=now - datetime.timedelta(hours=1))
    assert partner_answer(world, "plate", expired.plate_token) == Reason.UNKNOWN_CREDENTIAL


def test_a_guest_arriving_notifies_the_resident_once(world):
    one_time = _guest_pass(world, one_time=True)
    partner_answer(world, "plate", one_time.plate_token)
    partner_answer(world, "plate", one_time.plate_token)  # used up: nobody arrives
    arrived = Notification.objects.get(resident=world.resident, kind=GUEST_ARRIVED)
    assert (arrived.device_id, arrived.data) == (world.barrier.pk, {"guest_pass_id": one_time.pk})
    GuestPass.objects.filter(pk=one_time.pk).update(revoked_at=timezone.now())
    # a pass for the week: the partner asks again while the car waits; one arrival, one notification
    weekly = _guest_pass(world, valid_until=timezone.now() + datetime.timedelta(days=7))
    partner_answer(world, "plate", weekly.plate_token)
    partner_answer(world, "plate", weekly.plate_token)
    assert Notification.objects.filter(kind=GUEST_ARRIVED, data__guest_pass_id=weekly.pk).count() == 1
    assert Notification.objects.filter(resident=world.resident, kind=GUEST_ARRIVED).count() == 2
