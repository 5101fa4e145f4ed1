"""Residents' activity records go when their retention period is over: old opens, old
notifications and guest passes long ended; the recent ones, and passes still usable, stay."""

import datetime

import pytest
from django.utils import timezone

from access.models import GuestPass, Notification, OpenRequest
from access.services.guest_passes import guest_pass_create, guest_pass_revoke
from access.services.notifications import notification_create
from access.services.retention import activity_prune
from audit.models import AuditEvent
from smarthome.schedule import BEAT_SCHEDULE
from tests import factories

pytestmark = pytest.mark.django_db

DAY = datetime.timedelta(days=1)


@pytest.fixture
def estate(settings):
    settings.OPEN_REQUEST_RETENTION_DAYS, settings.NOTIFICATION_RETENTION_DAYS = 365, 90
    settings.GUEST_PASS_RETENTION_DAYS = 30
    building = factories.building()
    partner = factories.partner()
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    barrier = factories.device(building_=building, partner_=partner, kind="barrier")
    resident = factories.resident(unit_=factories.unit(building_=building))
    factories.grant(resident_=resident, building_=building)
    return resident, barrier


def _open(resident, barrier, n, created_at):
    return OpenRequest.objects.create(user=resident.user, idempotency_key=f"idem-{n}", device=barrier,
                                      partner_request_id=f"req-{n}", result="opened", created_at=created_at)


def _notification(resident, barrier, created_at):
    note = notification_create(resident_id=resident.pk, kind="guest.arrived", device_id=barrier.pk,
                               occurred_at=created_at, data={})
    Notification.objects.filter(pk=note.pk).update(created_at=created_at)
    return note


def test_old_records_go_and_recent_ones_stay(estate):
    resident, barrier = estate
    now = timezone.now()
    old_open, new_open = _open(resident, barrier, 1, now - 366 * DAY), _open(resident, barrier, 2, now - 364 * DAY)
    old_note, new_note = _notification(resident, barrier, now - 91 * DAY), _notification(resident, barrier, now - DAY)
    ended = guest_pass_create(resident=resident, device=barrier, plate="К111МН99")
    GuestPass.objects.filter(pk=ended.pk).update(valid_from=now - 40 * DAY, valid_until=now - 31 * DAY)
    recently_ended = guest_pass_create(resident=resident, device=barrier, plate="К222МН99")
    GuestPass.objects.filter(pk=recently_ended.pk).update(valid_from=now - 10 * DAY, valid_until=now - 9 * DAY)
    revoked = guest_pass_create(resident=resident, device=barrier, plate="К333МН99")
    guest_pass_revoke(guest_pass=revoked, actor=resident.user)
    GuestPass.objects.filter(pk=revoked.pk).update(revoked_at=now - 31 * DAY)
    usable = guest_pass_create(resident=resident, device=barrier, plate="К444МН99")

    assert activity_prune(now=now) == {"open_request": 1, "notification": 1, "guest_pass": 2}

    assert set(OpenRequest.objects.values_list("pk", flat=True)) == {new_open.pk}
    assert not OpenRequest.objects.filter(pk=old_open.pk).exists()
    assert set(Notification.objects.values_list("pk", flat=True)) == {new_note.pk}
    assert not Notification.objects.filter(pk=old_note.pk).exists()
    assert set(GuestPass.objects.values_list("pk", flat=True)) == {recently_ended.pk, usable.pk}
    events = AuditEvent.objects.filter(action="retention.pruned")
    assert sorted(events.values_list("object_type", "reason")) == [
        ("guest_pass", "n2.d30"), ("notification", "n1.d90"), ("open_request", "n1.d365")]
    assert activity_prune(now=now) == {"open_request": 0, "notification": 0, "guest_pass": 0}
    assert events.count() == 3  # nothing deleted, nothing recorded


def test_zero_days_keeps_a_kind_until_the_resident_is_erased(estate, settings):
    resident, barrier = estate
    settings.OPEN_REQUEST_RETENTION_DAYS = 0
    old = _open(resident, barrier, 1, timezone.now() - 3000 * DAY)
    assert activity_prune()["open_request"] == 0
    assert OpenRequest.objects.filter(pk=old.pk).exists()


def test_the_beat_runs_it_daily():
    entry = BEAT_SCHEDULE["access-activity-prune"]
    assert entry["task"] == "access.tasks.activity_prune_daily"
    assert entry["schedule"] == DAY
