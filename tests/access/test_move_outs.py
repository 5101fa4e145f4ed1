"""A move-out dated in the future revokes the building's face consents on its day, not before."""

import datetime
import uuid

import pytest
from django.utils import timezone

from access.models import Residency
from access.services.residencies import move_outs_due, residency_create, residency_end
from access.tasks import move_outs_due_daily
from consent.models import Consent
from consent.services import consent_give, consent_text_publish
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def resident_with_consent():
    building = factories.building()
    partner = factories.partner()
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    resident = factories.resident(unit_=factories.unit(building_=building))
    text = consent_text_publish(version=f"v{uuid.uuid4().hex[:6]}", body="Согласие на обработку биометрии")
    consent = consent_give(resident_id=resident.pk, company_id=building.company_id, partner=partner, text=text,
                           building_id=building.pk)
    return resident, consent


def test_future_move_out_revokes_on_its_day(resident_with_consent):
    resident, consent = resident_with_consent
    today = timezone.localdate()
    day = today + datetime.timedelta(days=5)
    residency_end(residency=Residency.objects.get(resident=resident), on=day)
    assert Consent.objects.get(pk=consent.pk).revoked_at is None  # not yet
    assert move_outs_due(today=today) == 0
    assert move_outs_due(today=day - datetime.timedelta(days=1)) == 0
    assert move_outs_due(today=day) == 1
    revoked = Consent.objects.get(pk=consent.pk)
    assert (revoked.revoked_at is not None, revoked.revoked_reason) == (True, "move_out")
    assert move_outs_due(today=day + datetime.timedelta(days=1)) == 0  # idempotent


def test_a_resident_who_lives_there_again_keeps_the_consent(resident_with_consent):
    resident, consent = resident_with_consent
    today = timezone.localdate()
    residency = Residency.objects.get(resident=resident)
    Residency.objects.filter(pk=residency.pk).update(valid_from=today - datetime.timedelta(days=30), valid_until=today)
    residency_create(resident=resident, unit=residency.unit, kind="tenant", valid_from=today)
    assert move_outs_due(today=today) == 0
    assert Consent.objects.get(pk=consent.pk).revoked_at is None


def test_the_daily_task_runs_the_service(resident_with_consent):
    resident, consent = resident_with_consent
    Residency.objects.filter(resident=resident).update(
        valid_from=timezone.localdate() - datetime.timedelta(days=30), valid_until=timezone.localdate())
    assert move_outs_due_daily.delay().get() == 1
    assert Consent.objects.get(pk=consent.pk).revoked_at is not None
