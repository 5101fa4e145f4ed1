"""The world an access decision is asked about: a partner's barrier, a resident with a grant, a car
and a consented face enrolment (shared by the decision tests)."""

from dataclasses import dataclass

from access.models import AccessGrant, Device, Resident, Vehicle, VehiclePlateToken
from consent.models import Consent
from tests import factories


@dataclass
class Scene:
    caller: object
    device: Device
    resident: Resident
    grant: AccessGrant
    plate_token: str
    subject_id: str
    vehicle: Vehicle
    consent: Consent


def build_scene(caller) -> Scene:
    building = factories.building()
    factories.contract(partner_=caller.partner, company_=building.company, buildings=[building])
    device = factories.device(building_=building, partner_=caller.partner, kind="barrier")
    resident = factories.resident(unit_=factories.unit(building_=building))
    grant = factories.grant(resident_=resident, building_=building)
    vehicle = factories.vehicle(resident_=resident)
    token = VehiclePlateToken.objects.get(vehicle=vehicle, partner=caller.partner).token
    enrolment = factories.face_enrolment(resident_=resident, partner_=caller.partner, status="active",
                                         building_id=building.pk)
    consent, subject_id = enrolment.consent, enrolment.subject_id
    return Scene(caller, device, resident, grant, token, subject_id, vehicle, consent)
