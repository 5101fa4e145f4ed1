"""Anomaly detection on decision traffic (alerts, suspension) and per-partner rate limits."""

import uuid

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from oauth2_provider.models import get_access_token_model
from prometheus_client import REGISTRY

from access.anomalies import decision_admit, resident_open_observe, security_alert_raise
from access.models import SecurityAlert
from audit.models import AuditEvent
from core.security.identifiers import pseudonymous_ref, user_ref
from core.security.roles import SECURITY_ADMIN
from partners.models import Partner
from partners.services import partner_reinstate
from tests import factories
from tests.access.decision_scene import build_scene
from tests.partners import partner_api
from tests.partners.partner_api import make_partner_caller

pytestmark = pytest.mark.django_db
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller

URL = "/partner/v1/access-decisions"


def setup_device(caller):
    building = factories.building()
    factories.contract(partner_=caller.partner, company_=building.company, buildings=[building])
    return factories.device(building_=building, partner_=caller.partner, kind="barrier")


@pytest.fixture
def device(partner_caller):
    return setup_device(partner_caller)


def ask(caller, device, token=None):
    return caller.post(URL, {
        "device_ref": device.partner_device_ref,
        "credential": {"type": "plate", "token": token or uuid.uuid4().hex},
        "request_id": "req-1", "observed_at": timezone.now().isoformat(),
    })


def alerts_counted(kind) -> float:
    return REGISTRY.get_sample_value("smarthome_security_alerts_total", {"kind": kind}) or 0.0


def test_plate_enumeration_raises_an_alert_and_suspends_the_partner(partner_caller, device, settings):
    settings.ACCESS_ANOMALY = {"max_unknown_credentials": 5, "suspend_on": ["unknown_credentials"]}
    before = alerts_counted("unknown_credentials")
    for _ in range(5):
        assert ask(partner_caller, device).json()["reason"] == "unknown_credential"
    assert not SecurityAlert.objects.exists()
    assert ask(partner_caller, device).status_code == 200  # the 6th distinct unknown plate crosses the line
    alert = SecurityAlert.objects.get()
    assert (alert.kind, alert.scope, alert.observed, alert.partner_suspended) == ("unknown_credentials", "partner",
                                                                                  6, True)
    assert alerts_counted("unknown_credentials") == before + 1
    assert Partner.objects.get(pk=partner_caller.partner.pk).suspended_at is not None
    assert AuditEvent.objects.filter(action="security.alert", reason="unknown_credentials").count() == 1
    assert AuditEvent.objects.filter(action="security.partner_suspended").count() == 1
    assert not get_access_token_model().objects.filter(expires__gt=timezone.now()).exists()
    decisions = AuditEvent.objects.filter(action="access.decision").count()
    assert ask(partner_caller, device).status_code == 401  # its tokens are gone
    assert AuditEvent.objects.filter(action="access.decision").count() == decisions


def test_the_same_unknown_plate_repeated_is_not_enumeration(partner_caller, device, settings):
    settings.ACCESS_ANOMALY = {"max_unknown_credentials": 3}
    for _ in range(8):
        assert ask(partner_caller, device, token="same-unknown-plate").status_code == 200
    assert not SecurityAlert.objects.exists()


def test_deny_ratio_alert_without_suspension(partner_caller, device, settings):
    settings.ACCESS_ANOMALY = {"min_decisions_for_ratio": 4, "max_deny_ratio": 0.5, "max_unknown_credentials": 100,
                               "suspend_on": ["unknown_credentials"]}
    for _ in range(4):
        ask(partner_caller, device)
    alert = SecurityAlert.objects.get()
    assert (alert.kind, alert.partner_suspended) == ("deny_ratio", False)
    assert Partner.objects.get(pk=partner_caller.partner.pk).suspended_at is None
    assert ask(partner_caller, device).status_code == 200
    assert SecurityAlert.objects.count() == 1  # one alert per window


def test_device_decision_rate_alert(partner_caller, device, settings):
    settings.ACCESS_ANOMALY = {"max_decisions_per_device": 3, "max_unknown_credentials": 100, "suspend_on": []}
    for _ in range(4):
        ask(partner_caller, device, token="same-unknown-plate")
    alert = SecurityAlert.objects.get()
    assert (alert.kind, alert.scope) == ("decision_rate", f"device:{device.partner_device_ref}")


def test_rate_limit_is_per_partner(partner_caller, device, settings, dev_pki):
    settings.PARTNER_DECISION_RATE = "3/min"
    other = make_partner_caller(dev_pki["smarthome-client.pem"]).login()
    other_device = setup_device(other)
    for _ in range(3):
        assert ask(partner_caller, device).status_code == 200
    decisions = AuditEvent.objects.filter(action="access.decision").count()
    limited = ask(partner_caller, device)
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert AuditEvent.objects.filter(action="access.decision").count() == decisions
    for _ in range(3):
        assert ask(other, other_device).status_code == 200


def test_requests_refused_before_a_decision_count_against_the_rate_limit(partner_caller, device, settings):
    settings.PARTNER_DECISION_RATE = "2/min"
    assert partner_caller.post(URL, {"device_ref": "x"}).status_code == 400  # malformed
    assert ask(partner_caller, type("D", (), {"partner_device_ref": "no-such-gate"})).status_code == 404
    decisions = AuditEvent.objects.filter(action="access.decision").count()
    limited = ask(partner_caller, device)
    assert limited.status_code == 429
    assert AuditEvent.objects.filter(action="access.decision").count() == decisions  # nothing decided
    assert partner_caller.post(URL, [1, 2]).status_code == 429  # a refused body is throttled too


@pytest.mark.redis
def test_a_decision_is_one_redis_round_trip(partner_caller, redis_sends):
    scene = build_scene(partner_caller)
    body = {"device_ref": scene.device.partner_device_ref, "credential": {"type": "plate", "token": scene.plate_token},
            "request_id": "req-1", "observed_at": timezone.now().isoformat()}
    assert partner_caller.post(URL, body).json()["reason"] == "granted"
    redis_sends.clear()
    assert partner_caller.post(URL, body).json()["reason"] == "granted"
    assert len(redis_sends) == 1  # rate limit and every anomaly counter in one call of one script


def test_only_a_security_admin_reinstates(partner_caller, device, settings):
    settings.ACCESS_ANOMALY = {"max_unknown_credentials": 1}
    ask(partner_caller, device)
    ask(partner_caller, device)
    partner = Partner.objects.get(pk=partner_caller.partner.pk)
    assert partner.suspended_at is not None
    with pytest.raises(PermissionDenied):
        partner_reinstate(partner=partner, actor=factories.staff_user())
    assert Partner.objects.get(pk=partner.pk).suspended_at is not None
    partner_reinstate(partner=partner, actor=factories.staff_user(role=SECURITY_ADMIN))
    assert Partner.objects.get(pk=partner.pk).suspended_at is None
    partner_caller.login()
    assert ask(partner_caller, device).status_code == 200


# --- per-resident counters --------------------------------------------------------------------


def fresh_resident_id() -> int:
    return uuid.uuid4().int % 10**12  # counters live in the session's Redis: never reuse a resident


@pytest.mark.redis
def test_allowed_decisions_per_resident_raise_one_alert_with_a_pseudonymous_scope(settings, redis_sends):
    settings.ACCESS_ANOMALY = {"max_decisions_per_resident": 3, "suspend_on": []}
    partner, resident_id = factories.partner(), fresh_resident_id()
    for _ in range(3):
        assert decision_admit(partner_id=partner.pk, device_ref="gate-1", denied=False, unknown_credential=None,
                              resident_id=resident_id).alerts == []
    assert len(redis_sends) == 3  # one round trip per decision
    # denied decisions naming the resident do not count towards it
    assert decision_admit(partner_id=partner.pk, device_ref="gate-1", denied=True, unknown_credential=None,
                          resident_id=resident_id).alerts == []
    [alert] = decision_admit(partner_id=partner.pk, device_ref="gate-1", denied=False, unknown_credential=None,
                             resident_id=resident_id).alerts
    assert (alert.kind, alert.scope, alert.observed, alert.threshold, alert.partner_suspended) == (
        "decision_rate", pseudonymous_ref("resident", resident_id), 4, 3, False)
    assert alert.scope.startswith("resident:")
    assert str(resident_id) not in alert.scope
    decision_admit(partner_id=partner.pk, device_ref="gate-1", denied=False, unknown_credential=None,
                   resident_id=resident_id)
    assert SecurityAlert.objects.count() == 1  # one alert per window
    assert Partner.objects.get(pk=partner.pk).suspended_at is None


@pytest.mark.redis
def test_decision_admit_without_a_resident_counts_no_resident(settings):
    settings.ACCESS_ANOMALY = {"max_decisions_per_resident": 1}
    partner = factories.partner()
    for _ in range(3):
        assert decision_admit(partner_id=partner.pk, device_ref="gate-1", denied=False,
                              unknown_credential=None).alerts == []


@pytest.mark.redis
def test_open_burst_of_one_resident_raises_an_alert_without_suspending(settings, redis_sends):
    settings.ACCESS_ANOMALY = {"max_opens_per_resident": 2}
    partner, resident_id, other_id = factories.partner(), fresh_resident_id(), fresh_resident_id()
    before = alerts_counted("open_burst")
    assert resident_open_observe(resident_id=resident_id, partner_id=partner.pk) == []
    assert resident_open_observe(resident_id=resident_id, partner_id=partner.pk) == []
    assert len(redis_sends) == 2  # one round trip per open
    assert resident_open_observe(resident_id=other_id, partner_id=partner.pk) == []  # another resident's budget
    [alert] = resident_open_observe(resident_id=resident_id, partner_id=partner.pk)
    assert (alert.kind, alert.scope, alert.observed, alert.threshold, alert.partner_suspended) == (
        "open_burst", pseudonymous_ref("resident", resident_id), 3, 2, False)
    assert alerts_counted("open_burst") == before + 1
    assert AuditEvent.objects.filter(action="security.alert", reason="open_burst").count() == 1
    assert resident_open_observe(resident_id=resident_id, partner_id=partner.pk) == []  # once per window
    assert Partner.objects.get(pk=partner.pk).suspended_at is None


@pytest.mark.redis
def test_open_burst_suspends_when_configured(settings):
    settings.ACCESS_ANOMALY = {"max_opens_per_resident": 1, "suspend_on": ["open_burst"]}
    partner, resident_id = factories.partner(), fresh_resident_id()
    resident_open_observe(resident_id=resident_id, partner_id=partner.pk)
    [alert] = resident_open_observe(resident_id=resident_id, partner_id=partner.pk)
    assert alert.partner_suspended is True
    assert Partner.objects.get(pk=partner.pk).suspended_at is not None


def test_reinstate_resolves_the_partners_open_alerts(settings):
    partner, other = factories.partner(), factories.partner()
    first = security_alert_raise(partner_id=partner.pk, kind="unknown_credentials", scope="partner", observed=31,
                                 threshold=30, window_s=60, suspend=True)
    foreign = security_alert_raise(partner_id=other.pk, kind="deny_ratio", scope="partner", observed=0.9,
                                   threshold=0.8, window_s=60)
    with pytest.raises(PermissionDenied):
        partner_reinstate(partner=partner, actor=factories.staff_user())
    assert SecurityAlert.objects.filter(resolved_at__isnull=False).count() == 0
    admin = factories.staff_user(role=SECURITY_ADMIN)
    partner_reinstate(partner=partner, actor=admin)
    first.refresh_from_db()
    foreign.refresh_from_db()
    assert first.resolved_at is not None
    assert first.resolved_by == user_ref(admin)
    assert foreign.resolved_at is None
