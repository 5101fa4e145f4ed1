"""Anomaly detection on decision traffic (alerts, suspension) and per-partner rate limits."""

import uuid

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from oauth2_provider.models import get_access_token_model
from prometheus_client import REGISTRY

from access.anomalies import partner_reinstate
from access.models import SecurityAlert
from audit.models import AuditEvent
from partners.models import Partner
from smarthome.roles import SECURITY_ADMIN
from tests import factories
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
