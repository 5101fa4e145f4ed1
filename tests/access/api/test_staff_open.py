"""A property manager opens a door or barrier for a courier: through the sandbox partner over
HTTPS + mTLS, the same way as a resident's open, audited as the manager's action with the stated
reason, at most once per form, rate limited, and only where a contract allows it."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from access.errors import RuleDenied, StaffOpenRateExceeded
from access.models import Device, OpenRequest
from access.services.opening import staff_device_open
from audit.actions import Action, ActorKind, Outcome
from audit.models import AuditEvent
from consent.subjects import pairwise_staff_subject_id
from core.security.identifiers import user_ref
from core.security.roles import PROPERTY_MANAGER
from partners.models import PartnerContract
from partners.selectors import current_credentials
from tests import factories
from tests.access.api.test_devices_open import opens
from tests.admin.conftest import login_verified

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def manager(estate):
    user = factories.staff_user(company_=estate.door.building.company, role=PROPERTY_MANAGER)
    assert user.has_perm("access.open_device")  # the property manager's role holds it
    return user


def open_for_courier(manager, device, token=None):
    return staff_device_open(actor=manager, device=device, reason="courier", idempotency_key=token or uuid.uuid4().hex)


def test_a_manager_opens_the_barrier_for_a_courier(estate, manager):
    outcome = open_for_courier(manager, estate.barrier)
    assert outcome.request.result == OpenRequest.Result.OPENED
    [entry] = opens(estate)
    key = current_credentials(partner=estate.partner).subject_key_bytes()
    assert entry["subject"] == pairwise_staff_subject_id(subject_key=key, user_id=manager.pk)
    assert entry["subject"].startswith("stf_")
    assert entry["device_ref"] == estate.barrier.partner_device_ref
    event = AuditEvent.objects.get(action=Action.STAFF_OPEN)
    assert (event.actor_kind, event.actor_ref, event.outcome, event.reason) == (
        ActorKind.STAFF, user_ref(manager), Outcome.SUCCESS, "courier")
    call = AuditEvent.objects.get(action=Action.PARTNER_OPEN)
    assert call.actor_ref == user_ref(manager)  # the partner call names who caused it


def test_the_same_form_sent_twice_opens_once(estate, manager):
    token = uuid.uuid4().hex
    first = open_for_courier(manager, estate.door, token)
    second = open_for_courier(manager, estate.door, token)
    assert (first.replayed, second.replayed) == (False, True)
    assert len(opens(estate)) == 1
    assert AuditEvent.objects.filter(action=Action.STAFF_OPEN).count() == 1


def test_opens_in_a_row_are_rate_limited(estate, manager, settings):
    settings.STAFF_OPEN_RATE = "2/min"
    open_for_courier(manager, estate.door)
    open_for_courier(manager, estate.barrier)
    with pytest.raises(StaffOpenRateExceeded) as refused:
        open_for_courier(manager, estate.door)
    assert refused.value.retry_after > 0
    assert len(opens(estate)) == 2
    denied = AuditEvent.objects.get(action=Action.STAFF_OPEN, outcome=Outcome.DENIED)
    assert denied.reason == "rate_limited"


def test_no_contract_allowing_opens_means_nothing_is_sent(estate, manager):
    PartnerContract.objects.filter(company=estate.door.building.company).update(allows_open=False)
    with pytest.raises(RuleDenied) as refused:
        open_for_courier(manager, estate.door)
    assert refused.value.code == "contract-not-covering"
    assert opens(estate) == []
    assert not OpenRequest.objects.exists()
    assert AuditEvent.objects.get(action=Action.STAFF_OPEN).reason == "contract_not_covering"


@pytest.mark.parametrize("who", ["other_company", "no_permission", "not_staff"])
def test_only_the_devices_own_staff_with_the_permission_may_open(estate, manager, who):
    device = estate.door
    if who == "other_company":
        device = estate.foreign_door
        actor = manager
    elif who == "no_permission":
        actor = factories.staff_user(company_=estate.door.building.company)
    else:
        actor = estate.resident.user
    with pytest.raises(PermissionDenied):
        open_for_courier(actor, device)
    assert opens(estate) == []
    assert not AuditEvent.objects.filter(action__in=[Action.STAFF_OPEN, Action.PARTNER_OPEN]).exists()


def test_a_camera_cannot_be_opened(estate, manager):
    with pytest.raises(ValidationError) as refused:
        open_for_courier(manager, estate.camera)
    assert refused.value.error_dict["device"][0].code == "not_openable"
    assert opens(estate) == []


def test_an_offline_device_is_reported_and_marked_offline(estate, manager):
    estate.sandbox.control.put_device(estate.door.partner_device_ref, online=False)
    outcome = open_for_courier(manager, estate.door)
    assert outcome.request.result == OpenRequest.Result.OFFLINE
    assert AuditEvent.objects.get(action=Action.STAFF_OPEN).outcome == Outcome.UNAVAILABLE
    assert Device.objects.get(pk=estate.door.pk).online is False


@pytest.mark.language("ru")
def test_the_devices_page_opens_for_a_courier(client, estate, manager):
    login_verified(client, manager)
    card = f"/admin/access/device/{estate.barrier.pk}/card/"
    page = client.get(card)
    assert page.status_code == 200
    token = page.context["open_form"]["token"].value()
    response = client.post(f"/admin/access/device/{estate.barrier.pk}/open/", {"reason": "courier", "token": token},
                           follow=True)
    assert response.redirect_chain[-1][0] == card
    assert f"{estate.barrier.name}: открыто." in response.content.decode()
    assert len(opens(estate)) == 1
    # the page sent again with the same token opens nothing more
    client.post(f"/admin/access/device/{estate.barrier.pk}/open/", {"reason": "courier", "token": token})
    assert len(opens(estate)) == 1
    # a reason is required
    client.post(f"/admin/access/device/{estate.barrier.pk}/open/", {"reason": "", "token": uuid.uuid4().hex})
    assert len(opens(estate)) == 1


def test_another_companys_device_page_cannot_open(client, estate, manager):
    login_verified(client, manager)
    response = client.post(f"/admin/access/device/{estate.foreign_door.pk}/open/",
                           {"reason": "courier", "token": uuid.uuid4().hex})
    assert response.status_code == 404
    assert opens(estate) == []
