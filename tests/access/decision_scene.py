"""The world an access decision is asked about: a partner's barrier, a resident with a grant, a car
and a consented face enrolment (shared by the decision tests)."""

import uuid
from dataclasses import dataclass

from access.models import AccessGrant, Device, Resident, Vehicle, VehiclePlateToken
from consent.models import Consent, FaceEnrolment
from consent.services import consent_give, consent_text_publish
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
    text = consent_text_publish(version=f"v{uuid.uuid4().hex[:6]}", body="Согласие на обработку биометрии")
    consent = consent_give(resident_id=resident.pk, company_id=building.company_id, partner=caller.partner,
                           text=text, building_id=building.pk)
    subject_id = "subj_" + uuid.uuid4().hex
    FaceEnrolment.objects.create(consent=consent, partner=caller.partner, resident_id=resident.pk,
                                 subject_id=subject_id, status="active")
    return Scene(caller, device, resident, grant, token, subject_id, vehicle, consent)
