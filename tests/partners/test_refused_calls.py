"""Partner calls refused before any view: one counted row per minute, source and reason; bursts alert."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit import refusals
from audit.models import AuditEvent, AuditRefusal
from tests.partners import partner_api, test_partner_auth
from tests.partners.partner_api import OUTSIDE_IP, PARTNER_IP
from tests.partners.test_partner_auth import URL, body

pytestmark = pytest.mark.django_db
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller
device = test_partner_auth.device


def counted() -> dict[tuple[str, str], int]:
    refusals.flush()
    return {(r.source, r.reason): r.count for r in AuditRefusal.objects.all()}


@pytest.mark.parametrize(("call", "status", "reason", "by_partner"), [
    (lambda c, d, pki: c.post(URL, body(d), cert=None), 401, "no_certificate", False),
    (lambda c, d, pki: c.post(URL, body(d), cert=pki["rogue-client.pem"].read_text()), 401, "unknown_certificate",
     False),
    (lambda c, d, pki: c.post(URL, body(d), ip=OUTSIDE_IP), 403, "ip_not_allowed", True),
    (lambda c, d, pki: c.post(URL, body(d), token=None), 401, "no_token", True),
    (lambda c, d, pki: c.post(URL, body(d), token="garbage"), 401, "invalid_token", True),
    (lambda c, d, pki: c.post(URL, body(d), token=c.fetch_token(cert=None)["access_token"]), 401, "token_not_bound",
     True),
    (lambda c, d, pki: c.post(URL, body(d), token=c.fetch_token(scope="events:write")["access_token"]), 403,
     "missing_scope", True),
])
def test_each_refusal_is_counted_by_partner_or_address(call, status, reason, by_partner, partner_caller, device,
                                                       dev_pki):
    # a token fetched for the call is audited on its own (auth.token_issue); the refused call is not
    calls = AuditEvent.objects.exclude(action__startswith="auth.")
    before = calls.count()
    response = call(partner_caller, device.partner_device_ref, dev_pki)
    assert response.status_code == status
    source = f"partner:{partner_caller.partner.pk}" if by_partner else f"ip:{PARTNER_IP}"
    assert counted() == {(source, reason): 1}
    assert AuditEvent.objects.filter(action="access.decision").count() == 0
    assert calls.count() == before  # counted, not one audit event per refused call


def test_a_suspended_partner_is_counted(partner_caller, device):
    partner_caller.partner.suspended_at = timezone.now()
    partner_caller.partner.save(update_fields=["suspended_at"])
    assert partner_caller.post(URL, body(device.partner_device_ref)).status_code == 403
    assert counted() == {(f"partner:{partner_caller.partner.pk}", "partner_suspended"): 1}


def test_a_flood_is_one_row_with_a_count_and_one_alert(partner_caller, device, settings):
    settings.AUDIT_REFUSAL_BURST_PER_MIN = 100
    with CaptureQueriesContext(connection) as queries:
        for _ in range(150):
            assert partner_caller.post(URL, body(device.partner_device_ref), ip=OUTSIDE_IP).status_code == 403
    upserts = [q for q in queries.captured_queries if q["sql"].startswith("INSERT INTO audit_refusal")]
    assert len(upserts) <= 10  # first one, the burst, and one per FLUSH_S at most - not 150
    minute = timezone.now().replace(second=0, microsecond=0)
    rows = counted()
    source = f"partner:{partner_caller.partner.pk}"
    if AuditRefusal.objects.count() == 2:  # the flood straddled a minute boundary
        assert sum(rows.values()) == 150
    else:
        assert rows == {(source, "ip_not_allowed"): 150}
        assert AuditRefusal.objects.get().minute == minute
    alert = AuditEvent.objects.get(action="security.alert", reason="partner_refusal_burst")
    assert (alert.partner_id, alert.source_ip, alert.object_ref) == (partner_caller.partner.pk, OUTSIDE_IP,
                                                                     "count:100")


def test_each_minute_has_its_own_row(partner_caller, device, monkeypatch):
    start = timezone.now().replace(second=30, microsecond=0)
    for offset in (0, 10, 70):
        with monkeypatch.context() as patch:
            moment = start + datetime.timedelta(seconds=offset)
            patch.setattr("django.utils.timezone.now", lambda moment=moment: moment)
            partner_caller.post(URL, body(device.partner_device_ref), ip=OUTSIDE_IP)
    refusals.flush()
    assert sorted(AuditRefusal.objects.values_list("count", flat=True)) == [1, 2]
    assert AuditEvent.objects.filter(action="security.alert").count() == 0
