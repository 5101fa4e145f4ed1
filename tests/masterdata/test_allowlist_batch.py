"""allowlist_batch: many changes, one patch per (partner, site) when the batch ends; outside a
batch every change still enqueues its own patch at once (nothing changes for one-row calls)."""

import pytest
from django.db import transaction

from access.models import VehiclePlateToken
from access.services.allowlist import allowlist_batch
from access.services.vehicles import vehicle_create, vehicle_delete
from partners.models import OutboxMessage
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    company = factories.company()
    building = factories.building(company_=company)
    partner = factories.partner()
    factories.contract(partner_=partner, company_=company, buildings=[building])
    factories.device(building_=building, partner_=partner, kind="barrier", partner_device_ref="gate")
    residents = []
    for _ in range(3):
        person = factories.resident(unit_=factories.unit(building_=building))
        factories.grant(resident_=person, building_=building)
        residents.append(person)
    return partner, building, residents


def patches():
    return list(OutboxMessage.objects.filter(operation="allowlist_patch").order_by("pk"))


def test_outside_a_batch_each_change_is_its_own_patch(site):
    _partner, _building, residents = site
    before = len(patches())
    for person in residents:
        vehicle_create(resident=person, plate=factories.unique_plate())
    assert len(patches()) == before + 3


def test_inside_a_batch_one_patch_per_site_with_every_resident(site):
    _partner, building, residents = site
    gone = factories.vehicle(resident_=residents[0])
    gone_token = VehiclePlateToken.objects.get(vehicle=gone).token
    before = len(patches())
    with transaction.atomic(), allowlist_batch() as batch:
        cars = [vehicle_create(resident=person, plate=factories.unique_plate()) for person in residents]
        vehicle_delete(vehicle=gone)
        assert len(patches()) == before  # nothing until the batch ends
    assert batch.patches == 1
    (patch,) = patches()[before:]
    assert patch.ordering_key == f"allowlist:building-{building.pk}"
    tokens = {VehiclePlateToken.objects.get(vehicle=car).token for car in cars}
    assert {entry["token"] for entry in patch.payload["upserts"]} == tokens
    assert patch.payload["removals"] == [{"type": "plate", "token": gone_token}]


def test_a_failed_batch_enqueues_nothing(site):
    _partner, _building, residents = site
    before = len(patches())
    def failing_import():
        with transaction.atomic(), allowlist_batch():
            vehicle_create(resident=residents[0], plate=factories.unique_plate())
            raise RuntimeError("the import failed")

    with pytest.raises(RuntimeError):
        failing_import()
    assert len(patches()) == before


def test_a_nested_batch_joins_the_outer_one(site):
    _partner, _building, residents = site
    before = len(patches())
    with transaction.atomic(), allowlist_batch() as outer:
        vehicle_create(resident=residents[0], plate=factories.unique_plate())
        with allowlist_batch() as inner:
            vehicle_create(resident=residents[1], plate=factories.unique_plate())
        assert inner is outer
        assert len(patches()) == before
    assert len(patches()) == before + 1


def test_a_batch_keeps_each_distinct_change_once(site):
    """A resident's two cars for the same partner are one change to restate, and equal sets of
    ids are held once: an import of 50,000 residents keeps its changes small."""
    _partner, _building, residents = site
    with transaction.atomic(), allowlist_batch() as batch:
        for person in residents:
            vehicle_create(resident=person, plate=factories.unique_plate())
            vehicle_create(resident=person, plate=factories.unique_plate())
        assert len(batch.changes) == len(residents)
        assert len({id(change.partner_ids) for change in batch.changes}) == 1
    assert batch.patches == 1
