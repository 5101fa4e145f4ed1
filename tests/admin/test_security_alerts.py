"""The security-alert admin: who sees the list, the "Reinstate partner" action, and that alerts stay as raised."""

import uuid

import pytest
from django.utils import timezone

from access.anomalies import security_alert_raise
from access.models import SecurityAlert
from audit.models import AuditEvent
from core.security.identifiers import user_ref
from partners.models import Partner
from tests import factories
from tests.admin.conftest import login_verified
from tests.partners import partner_api

pytestmark = pytest.mark.django_db
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller

CHANGELIST = "/admin/access/securityalert/"


def raise_alert(partner, kind="unknown_credentials", suspend=False, scope="partner"):
    return security_alert_raise(partner_id=partner.pk, kind=kind, scope=scope, observed=31, threshold=30,
                                window_s=60, suspend=suspend)


@pytest.fixture
def alerts(world):
    a, b = world["a"][Partner], world["b"][Partner]
    return {"a": raise_alert(a, suspend=True), "b": raise_alert(b, kind="deny_ratio", scope="device:gate-b")}


def reinstate(client, pks):
    return client.post(CHANGELIST, {"action": "reinstate_partners", "_selected_action": [str(pk) for pk in pks]})


def suspended(partner) -> bool:
    return Partner.objects.get(pk=partner.pk).suspended_at is not None


@pytest.mark.parametrize("who", ["security", "root"])
def test_security_admin_and_superuser_list_every_partners_alerts(client, users, alerts, who):
    login_verified(client, getattr(users, who))
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    shown = {alert.pk for alert in response.context["cl"].result_list}
    assert shown == {alerts["a"].pk, alerts["b"].pk}
    page = response.content.decode()
    assert "device:gate-b" in page
    assert "Reinstate partner of the selected alerts" in page
    assert "Security alerts" in client.get("/admin/").content.decode()


@pytest.mark.parametrize(("filters", "expected"), [
    ({"kind__exact": "deny_ratio"}, {"b"}),
    ({"partner_suspended__exact": "1"}, {"a"}),
    ({"resolved_at__isempty": "1"}, {"a", "b"}),
])
def test_filters(client, users, alerts, filters, expected):
    login_verified(client, users.security)
    response = client.get(CHANGELIST, filters)
    assert response.status_code == 200
    assert {alert.pk for alert in response.context["cl"].result_list} == {alerts[key].pk for key in expected}


def test_partner_filter(client, users, alerts, world):
    login_verified(client, users.security)
    response = client.get(CHANGELIST, {"partner__id__exact": world["b"][Partner].pk})
    assert [alert.pk for alert in response.context["cl"].result_list] == [alerts["b"].pk]


@pytest.mark.parametrize("who", ["manager", "compliance", "scoped"])
def test_other_staff_do_not_see_alerts_at_all(client, users, alerts, who):
    # "scoped" holds every permission (incl. access.view_securityalert): the list is for the role, not the permission
    login_verified(client, getattr(users, who))
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(f"{CHANGELIST}{alerts['a'].pk}/change/").status_code == 403
    assert "Security alerts" not in client.get("/admin/").content.decode()


def test_alerts_cannot_be_added_changed_or_deleted(client, users, alerts):
    login_verified(client, users.root)
    alert = alerts["a"]
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    detail = client.get(f"{CHANGELIST}{alert.pk}/change/")
    assert detail.status_code == 200  # view only
    page = detail.content.decode()
    assert 'name="_save"' not in page
    assert "deletelink" not in page
    changed = client.post(f"{CHANGELIST}{alert.pk}/change/", {"kind": "deny_ratio", "observed": 1, "threshold": 1,
                                                               "scope": "partner", "window_s": 1})
    assert changed.status_code == 403
    assert client.post(f"{CHANGELIST}{alert.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [str(alert.pk)], "post": "yes"})
    assert bulk.status_code == 302  # back to the list with "No action selected": delete_selected is not offered
    fresh = SecurityAlert.objects.get(pk=alert.pk)
    assert (fresh.kind, fresh.observed, fresh.scope) == ("unknown_credentials", 31, "partner")
    assert SecurityAlert.objects.count() == 2


def test_reinstate_lifts_the_suspension_resolves_alerts_and_is_audited(client, users, alerts, world):
    partner = world["a"][Partner]
    assert suspended(partner)
    second = raise_alert(partner, kind="decision_rate")
    login_verified(client, users.security)
    response = reinstate(client, [alerts["a"].pk])
    assert response.status_code == 302
    assert not suspended(partner)
    for alert in (alerts["a"], second):
        alert.refresh_from_db()
        assert alert.resolved_at is not None
        assert alert.resolved_by == user_ref(users.security)
    alerts["b"].refresh_from_db()
    assert alerts["b"].resolved_at is None  # another partner's alert is untouched
    event = AuditEvent.objects.get(action="security.partner_reinstated")
    assert (event.actor_ref, event.object_ref, event.partner_id) == (user_ref(users.security),
                                                                     f"partner:{partner.pk}", partner.pk)
    page = client.get(response["Location"]).content.decode()
    assert "1 partner(s) reinstated" in page
    resolved = client.get(CHANGELIST, {"resolved_at__isempty": "0"})
    assert {alert.pk for alert in resolved.context["cl"].result_list} == {alerts["a"].pk, second.pk}


@pytest.mark.parametrize("who", ["manager", "compliance", "scoped"])
def test_other_staff_cannot_reinstate(client, users, alerts, world, who):
    partner = world["a"][Partner]
    login_verified(client, getattr(users, who))
    assert reinstate(client, [alerts["a"].pk]).status_code == 403
    assert suspended(partner)
    assert SecurityAlert.objects.get(pk=alerts["a"].pk).resolved_at is None
    assert not AuditEvent.objects.filter(action="security.partner_reinstated").exists()


def test_the_action_refuses_a_non_security_admin_with_a_message(rf, users, alerts, world):
    """Defence in depth: were the action reached without the role, the service still refuses."""
    from django.contrib.admin.sites import site
    from django.contrib.messages.storage.fallback import FallbackStorage

    model_admin = site._registry[SecurityAlert]
    request = rf.post(CHANGELIST)
    request.user = users.scoped
    request.session = {}
    request._messages = FallbackStorage(request)
    model_admin.reinstate_partners(request, SecurityAlert.objects.filter(pk=alerts["a"].pk))
    assert [str(m) for m in request._messages] == ["Only a security admin reinstates a partner."]
    assert suspended(world["a"][Partner])
    assert SecurityAlert.objects.get(pk=alerts["a"].pk).resolved_at is None
    assert not AuditEvent.objects.filter(action="security.partner_reinstated").exists()


def test_a_reinstated_partner_gets_new_tokens_that_work(client, users, partner_caller):
    building = factories.building()
    factories.contract(partner_=partner_caller.partner, company_=building.company, buildings=[building])
    device = factories.device(building_=building, partner_=partner_caller.partner, kind="barrier")

    def ask():
        return partner_caller.post("/partner/v1/access-decisions", {
            "device_ref": device.partner_device_ref, "credential": {"type": "plate", "token": uuid.uuid4().hex},
            "request_id": "req-1", "observed_at": timezone.now().isoformat(),
        })

    assert ask().status_code == 200
    alert = raise_alert(partner_caller.partner, suspend=True)
    assert ask().status_code == 401  # suspension expired the token
    login_verified(client, users.security)
    assert reinstate(client, [alert.pk]).status_code == 302
    partner_caller.login()
    assert ask().status_code == 200


PARTNERS = "/admin/partners/partner/"


def test_security_admin_suspends_and_reinstates_a_partner_from_the_partner_list(client, users, world):
    partner = world["a"][Partner]
    login_verified(client, users.security)
    response = client.post(PARTNERS, {"action": "suspend_partners", "_selected_action": [str(partner.pk)]})
    assert response.status_code == 302
    assert suspended(partner)
    event = AuditEvent.objects.get(action="security.partner_suspended")
    assert (event.actor_ref, event.reason) == (user_ref(users.security), "admin")
    client.post(PARTNERS, {"action": "reinstate_partners", "_selected_action": [str(partner.pk)]})
    assert not suspended(partner)
    assert AuditEvent.objects.filter(action="security.partner_reinstated").count() == 1


@pytest.mark.parametrize("who", ["manager", "compliance"])
def test_other_staff_cannot_suspend_a_partner(client, users, world, who):
    partner = world["a"][Partner]
    login_verified(client, getattr(users, who))
    response = client.post(PARTNERS, {"action": "suspend_partners", "_selected_action": [str(partner.pk)]})
    assert response.status_code == 200  # the list again: the action is not theirs to run
    assert "suspend_partners" not in response.content.decode()
    assert not suspended(partner)
    assert not AuditEvent.objects.filter(action="security.partner_suspended").exists()


def test_the_detail_page_reinstates_the_alerts_partner(client, users, alerts, world):
    partner, alert = world["a"][Partner], alerts["a"]
    login_verified(client, users.security)
    detail = f"{CHANGELIST}{alert.pk}/change/"
    page = client.get(detail).content.decode()
    assert f'action="{CHANGELIST}{alert.pk}/reinstate/"' in page
    assert "Reinstate partner</button>" in page
    response = client.post(f"{CHANGELIST}{alert.pk}/reinstate/")
    assert (response.status_code, response["Location"]) == (302, detail)
    assert not suspended(partner)
    assert SecurityAlert.objects.get(pk=alert.pk).resolved_by == user_ref(users.security)
    assert SecurityAlert.objects.get(pk=alerts["b"].pk).resolved_at is None  # another partner's alert
    assert AuditEvent.objects.filter(action="security.partner_reinstated", partner_id=partner.pk).count() == 1
    page = client.get(detail).content.decode()
    assert "1 partner(s) reinstated" in page
    assert "Reinstate partner</button>" not in page  # resolved, partner active: nothing left to reinstate


def test_the_reinstate_button_is_post_only_and_for_security_admins(client, users, alerts, world):
    partner, alert = world["a"][Partner], alerts["a"]
    login_verified(client, users.security)
    assert client.get(f"{CHANGELIST}{alert.pk}/reinstate/").status_code == 405
    assert client.post(f"{CHANGELIST}999999/reinstate/").status_code == 404
    client.logout()
    login_verified(client, users.scoped)  # every permission, not the role
    assert client.post(f"{CHANGELIST}{alert.pk}/reinstate/").status_code == 403
    assert suspended(partner)
    assert SecurityAlert.objects.get(pk=alert.pk).resolved_at is None
    assert not AuditEvent.objects.filter(action="security.partner_reinstated").exists()
