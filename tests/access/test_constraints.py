"""Rules about one row are database constraints: they hold for writes that bypass the services."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from access.models import AccessGrant, Residency
from partners.models import PartnerContract, PartnerCredentials
from tests import factories

pytestmark = pytest.mark.django_db


def integrity_error(create):
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_grant_needs_exactly_one_holder():
    resident = factories.resident()
    residency = factories.residency(resident_=resident)
    building = residency.unit.building
    integrity_error(lambda: AccessGrant.objects.create(building=building))
    integrity_error(lambda: AccessGrant.objects.create(resident=resident, residency=residency, building=building))
    AccessGrant.objects.create(resident=resident, building=building)
    AccessGrant.objects.create(residency=residency, building=building)


def test_grant_needs_exactly_one_target():
    resident = factories.resident()
    building = factories.building(company_=resident.company)
    device = factories.device(building_=building)
    integrity_error(lambda: AccessGrant.objects.create(resident=resident))
    integrity_error(lambda: AccessGrant.objects.create(resident=resident, building=building, device=device))
    AccessGrant.objects.create(resident=resident, device=device)


def test_grant_service_reports_the_constraint_as_a_validation_error():
    resident = factories.resident()
    building = factories.building(company_=resident.company)
    with pytest.raises(ValidationError, match="exactly one of: a resident, a residency"):
        factories.grant(resident_=resident, building_=building, residency=factories.residency(resident_=resident))
    with pytest.raises(ValidationError, match="exactly one of: a building, a device"):
        factories.grant(resident_=resident, building_=building, device=factories.device(building_=building))
    assert AccessGrant.objects.count() == 0


def test_grant_dates_in_order():
    resident = factories.resident()
    building = factories.building(company_=resident.company)
    now = timezone.now()
    integrity_error(lambda: AccessGrant.objects.create(resident=resident, building=building, valid_from=now,
                                                       valid_until=now))
    with pytest.raises(ValidationError, match="end after it starts"):
        factories.grant(resident_=resident, building_=building, valid_from=now,
                        valid_until=now - datetime.timedelta(hours=1))


def test_grant_schedule_is_validated():
    resident = factories.resident()
    building = factories.building(company_=resident.company)
    for bad in ({"monday": [["07:00", "23:00"]]}, {"mon": [["23:00", "07:00"]]}, {"mon": [["7:00", "23:00"]]},
                {"mon": "07:00-23:00"}, ["mon"]):
        with pytest.raises(ValidationError):
            factories.grant(resident_=resident, building_=building, schedule=bad)
    grant = factories.grant(resident_=resident, building_=building,
                            schedule={"mon": [["07:00", "12:00"], ["13:00", "24:00"]], "sat": []})
    assert grant.schedule["mon"][1] == ["13:00", "24:00"]


def test_residency_dates_in_order():
    resident = factories.resident()
    unit = factories.unit(building_=factories.building(company_=resident.company))
    day = datetime.date(2024, 5, 1)
    integrity_error(lambda: Residency.objects.create(resident=resident, unit=unit, kind="owner", valid_from=day,
                                                     valid_until=day))
    with pytest.raises(ValidationError, match="end after it starts"):
        factories.residency(resident_=resident, unit_=unit, valid_from=day, valid_until=day - datetime.timedelta(1))
    Residency.objects.create(resident=resident, unit=unit, kind="owner", valid_from=day,
                             valid_until=day + datetime.timedelta(1))


def test_contract_must_forbid_subcontracting():
    building = factories.building()
    contract = factories.contract(buildings=[building])
    integrity_error(lambda: PartnerContract.objects.filter(pk=contract.pk).update(subcontracting_forbidden=False))
    with pytest.raises(ValidationError, match="forbid subcontracting"):
        factories.contract(buildings=[building], subcontracting_forbidden=False)


def test_contract_dates_and_retention():
    building = factories.building()
    now = timezone.now()
    with pytest.raises(ValidationError, match="end after it starts"):
        factories.contract(buildings=[building], valid_from=now, valid_until=now)
    with pytest.raises(ValidationError):
        factories.contract(buildings=[building], retention_days=0)


def test_one_current_credentials_per_partner():
    partner = factories.partner()
    current = PartnerCredentials.objects.get(partner=partner)

    def second_current():
        PartnerCredentials.objects.create(
            partner=partner, version=current.version + 1, client_id="x", client_secret="s",
            plate_token_key="a2V5", subject_key="a2V5", webhook_secret="whsec_a2V5",
        )

    integrity_error(second_current)

    def same_version():
        PartnerCredentials.objects.create(
            partner=partner, version=current.version, client_id="x", client_secret="s", plate_token_key="a2V5",
            subject_key="a2V5", webhook_secret="whsec_a2V5", revoked_at=timezone.now(),
        )

    integrity_error(same_version)


def test_device_ref_unique_per_partner():
    partner = factories.partner()
    factories.device(partner_=partner, partner_device_ref="sbx-door-1")
    with pytest.raises(ValidationError, match="already exists"):
        factories.device(partner_=partner, partner_device_ref="sbx-door-1")
    factories.device(partner_=factories.partner(), partner_device_ref="sbx-door-1")


def test_str_never_shows_personal_data():
    resident = factories.resident(full_name="Иванов Алексей Сергеевич", phone="+79161234567",
                                  email="ivanov@example.ru")
    vehicle = factories.vehicle(resident_=resident, plate="А123ВС77")
    residency = factories.residency(resident_=resident)
    for obj in (resident, vehicle, residency, *vehicle.plate_tokens.all()):
        text = str(obj)
        for secret in ("Иванов", "9161234567", "9160000000", "ivanov", "A123BC77", "А123ВС77"):
            assert secret not in text
    assert str(resident) == f"Resident #{resident.pk}"
    assert str(vehicle) == f"Vehicle #{vehicle.pk}"
