"""GET devices and POST devices/{id}/open end to end through the sandbox partner."""

from __future__ import annotations

import datetime
import time
import uuid

import pytest
from django.utils import timezone

from access.models import AccessGrant, OpenRequest
from access.schedules import DAYS
from audit.actions import Action, Outcome
from audit.models import AuditEvent
from consent.subjects import pairwise_subject_id
from core.security.identifiers import user_ref
from partners.models import PartnerContract
from partners.selectors import current_credentials
from tests import factories
from tests.access.api.conftest import api

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def opens(estate) -> list[dict]:
    return [e for e in estate.sandbox.control.log()["entries"] if e["operation"] == "device.open"]


def post_open(client, device, key: str | None = None):
    headers = {} if key == "" else {"HTTP_IDEMPOTENCY_KEY": key or str(uuid.uuid4())}
    return client.post(f"/api/v1/devices/{device.pk}/open", **headers)


def assert_nothing_opened(estate):
    assert opens(estate) == []
    assert not OpenRequest.objects.exists()


# --- GET devices ------------------------------------------------------------------------------


def test_devices_lists_only_granted_devices_with_kind_and_online_state(estate):
    response = api(estate.resident.user, "devices:read").get("/api/v1/devices")
    assert response.status_code == 200
    by_id = {d["id"]: d for d in response.json()}
    assert set(by_id) == {estate.door.pk, estate.barrier.pk, estate.camera.pk}
    assert by_id[estate.barrier.pk]["kind"] == "barrier"
    assert by_id[estate.door.pk]["online"] is False  # nothing reported yet


def test_devices_hides_devices_of_suspended_or_expired_grants(estate):
    AccessGrant.objects.filter(resident=estate.resident).update(suspended=True)
    assert api(estate.resident.user, "devices:read").get("/api/v1/devices").json() == []


def test_devices_needs_a_token_and_the_scope(estate):
    assert api().get("/api/v1/devices").status_code == 401
    response = api(estate.resident.user, "doors:open").get("/api/v1/devices")
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/missing-scope"
    assert response.json()["required_scope"] == "devices:read"


# --- POST devices/{id}/open -------------------------------------------------------------------


def test_open_calls_the_partner_with_the_pairwise_subject_and_audits(estate):
    response = post_open(api(estate.resident.user), estate.door)
    assert response.status_code == 200, response.json()
    assert response.json()["result"] == "opened"
    assert response.json()["replayed"] is False
    [entry] = opens(estate)
    key = current_credentials(partner=estate.partner).subject_key_bytes()
    assert entry["subject"] == pairwise_subject_id(subject_key=key, resident_id=estate.resident.pk)
    assert entry["device_ref"] == estate.door.partner_device_ref
    event = AuditEvent.objects.get(action=Action.RESIDENT_OPEN)
    assert (event.outcome, event.reason, event.actor_ref) == (Outcome.SUCCESS, "opened", user_ref(estate.resident.user))
    assert AuditEvent.objects.filter(action=Action.GRANT_CHECK, outcome=Outcome.SUCCESS).count() == 1


def test_open_with_the_same_idempotency_key_never_opens_twice(estate):
    client = api(estate.resident.user)
    first = post_open(client, estate.barrier, "retry-key-0001")
    second = post_open(client, estate.barrier, "retry-key-0001")
    assert first.status_code == second.status_code == 200
    assert second.json()["result"] == "opened"
    assert second.json()["replayed"] is True
    assert len(opens(estate)) == 1
    # the same key for another device is refused, and still nothing more is opened
    assert post_open(client, estate.door, "retry-key-0001").status_code == 422
    assert len(opens(estate)) == 1


@pytest.mark.parametrize("key", ["", "short", "x" * 65, "bad key with spaces"])
def test_open_needs_a_well_formed_idempotency_key(estate, key):
    response = post_open(api(estate.resident.user), estate.door, key)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert_nothing_opened(estate)


def test_open_reports_offline_and_denied_from_the_partner(estate):
    estate.sandbox.control.put_device(estate.door.partner_device_ref, online=False)
    estate.sandbox.control.put_device(estate.barrier.partner_device_ref, online=True, lockdown=True)
    client = api(estate.resident.user)
    assert post_open(client, estate.door).json()["result"] == "offline"
    assert post_open(client, estate.barrier).json()["result"] == "denied"
    outcomes = set(AuditEvent.objects.filter(action=Action.RESIDENT_OPEN).values_list("outcome", flat=True))
    assert outcomes == {Outcome.UNAVAILABLE, Outcome.DENIED}


def test_open_without_token_is_401_and_opens_nothing(estate):
    assert post_open(api(), estate.door).status_code == 401
    assert_nothing_opened(estate)


@pytest.mark.parametrize(("device", "scope", "needed"), [
    ("door", "barriers:open devices:read", "doors:open"),
    ("barrier", "doors:open devices:read", "barriers:open"),
])
def test_open_needs_the_scope_of_the_device_kind(estate, device, scope, needed):
    response = post_open(api(estate.resident.user, scope), getattr(estate, device))
    assert response.status_code == 403
    assert response.json()["required_scope"] == needed
    assert_nothing_opened(estate)


def test_open_of_a_device_that_is_not_yours_is_404(estate):
    # another company's door; another resident's personal device; a device that does not exist
    other_building = factories.building(company_=estate.resident.company)
    private = factories.device(building_=other_building, partner_=estate.partner, partner_device_ref="private-1")
    factories.grant(resident_=estate.other, device=private, building_=None)
    client = api(estate.resident.user)
    for device_id in (estate.foreign_door.pk, private.pk, 999999):
        response = client.post(f"/api/v1/devices/{device_id}/open", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
        assert response.status_code == 404
        assert response.json()["type"] == "/problems/not-found"
    assert_nothing_opened(estate)


def _other_day() -> str:
    return DAYS[(timezone.now().astimezone(datetime.UTC).weekday() + 3) % 7]


@pytest.mark.parametrize(("breakage", "reason"), [
    ("resident_suspended", "resident-suspended"),
    ("grant_suspended", "grant-suspended"),
    ("grant_expired", "grant-expired"),
    ("grant_future", "grant-not-yet-valid"),
    ("outside_schedule", "outside-schedule"),
    ("contract_no_open", "contract-not-covering"),
    ("contract_expired", "contract-not-covering"),
    ("partner_suspended", "contract-not-covering"),
])
def test_open_refused_by_a_rule_is_403_with_the_reason_and_audited(estate, breakage, reason):
    grants = AccessGrant.objects.filter(resident=estate.resident)
    now = timezone.now()
    if breakage == "resident_suspended":
        type(estate.resident).objects.filter(pk=estate.resident.pk).update(suspended=True)
    elif breakage == "grant_suspended":
        grants.update(suspended=True)
    elif breakage == "grant_expired":
        grants.update(valid_from=now - datetime.timedelta(days=10), valid_until=now - datetime.timedelta(days=1))
    elif breakage == "grant_future":
        grants.update(valid_from=now + datetime.timedelta(days=1))
    elif breakage == "outside_schedule":
        grants.update(schedule={_other_day(): [["00:00", "24:00"]]})
    elif breakage == "contract_no_open":
        PartnerContract.objects.filter(buildings=estate.door.building).update(allows_open=False)
    elif breakage == "contract_expired":
        PartnerContract.objects.filter(buildings=estate.door.building).update(
            valid_from=now - datetime.timedelta(days=10), valid_until=now - datetime.timedelta(days=1))
    elif breakage == "partner_suspended":
        type(estate.partner).objects.filter(pk=estate.partner.pk).update(suspended_at=now)
    response = post_open(api(estate.resident.user), estate.door)
    assert response.status_code == 403
    assert response.json()["type"] == f"/problems/{reason}"
    assert response.json()["reason"] == reason
    assert_nothing_opened(estate)
    event = AuditEvent.objects.get(action=Action.RESIDENT_OPEN)
    assert (event.outcome, event.reason) == (Outcome.DENIED, reason.replace("-", "_"))


def test_schedule_is_evaluated_in_the_building_time_zone(estate):
    building = estate.door.building
    type(building).objects.filter(pk=building.pk).update(timezone="Asia/Vladivostok")
    local = timezone.now().astimezone(datetime.timezone(datetime.timedelta(hours=10)))
    AccessGrant.objects.filter(resident=estate.resident).update(schedule={DAYS[local.weekday()]: [["00:00", "24:00"]]})
    assert post_open(api(estate.resident.user), estate.door).json()["result"] == "opened"


def test_partner_down_is_503_with_retry_after_within_the_budget(estate, settings):
    estate.sandbox.control.down()
    try:
        started = time.monotonic()
        response = post_open(api(estate.resident.user), estate.door, "down-key-0001")
        elapsed = time.monotonic() - started
    finally:
        estate.sandbox.control.up()
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    assert response.json()["type"] == "/problems/partner-unavailable"
    budget = settings.PARTNER_CONNECT_TIMEOUT_S + settings.PARTNER_READ_TIMEOUT_S["open"]
    assert elapsed < budget
    assert OpenRequest.objects.get().result == OpenRequest.Result.UNAVAILABLE
    # the app retries with the same key once the partner is back: it opens, once
    retry = post_open(api(estate.resident.user), estate.door, "down-key-0001")
    assert retry.json()["result"] == "opened"
    assert len(opens(estate)) == 1


def test_partner_refusing_connections_is_503_with_the_breakers_retry_after(estate, settings):
    settings.PARTNER_BREAKER_FAIL_MAX = 5
    settings.PARTNER_BREAKER_RESET_S = 30
    estate.sandbox.control.down()
    try:
        first = post_open(api(estate.resident.user), estate.door, "refused-key-0001")
        second = post_open(api(estate.resident.user), estate.door, "refused-key-0002")
    finally:
        estate.sandbox.control.up()
    assert (first.status_code, second.status_code) == (503, 503)
    assert (first.json()["reason"], first["Retry-After"], second["Retry-After"]) == ("connection", "6", "12")
    assert first.json()["retry_after_s"] == 6


def test_hanging_partner_is_503_after_the_read_timeout(estate, settings):
    # the token request hangs too: the budget is the token's read timeout + the open's
    settings.PARTNER_READ_TIMEOUT_S = {**settings.PARTNER_READ_TIMEOUT_S, "open": 0.5, "token": 0.5}
    estate.sandbox.control.set_faults(hang=True)
    try:
        started = time.monotonic()
        response = post_open(api(estate.resident.user), estate.door)
        elapsed = time.monotonic() - started
    finally:
        estate.sandbox.control.clear_faults()
    assert response.status_code == 503
    assert "Retry-After" in response
    assert elapsed < 0.5 + 0.5 + 1.0


def test_open_rate_limit_per_user_and_device_is_429_with_retry_after(estate, settings):
    settings.OPEN_RATE_PER_MIN = 3
    client = api(estate.resident.user)
    statuses = [post_open(client, estate.door).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = post_open(client, estate.door)
    assert limited.status_code == 429
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert len(opens(estate)) == 3
    assert post_open(client, estate.barrier).status_code == 200  # another device has its own budget


def test_overall_rate_limit_per_user(estate, settings):
    settings.API_RATE_PER_MIN = 2
    client = api(estate.resident.user)
    assert [client.get("/api/v1/devices").status_code for _ in range(3)] == [200, 200, 429]
    assert api(estate.other.user).get("/api/v1/devices").status_code == 200


# --- a pending request abandoned by a crashed process -------------------------------------------


def abandoned_request(estate, key: str, age_s: float) -> OpenRequest:
    """A pending row as a process that died during the partner call leaves it."""
    return OpenRequest.objects.create(
        user=estate.resident.user, idempotency_key=key, device=estate.door, partner_request_id=str(uuid.uuid4()),
        created_at=timezone.now() - datetime.timedelta(seconds=age_s),
    )


def test_a_stale_pending_request_is_taken_over_by_a_retry(estate, settings):
    settings.OPEN_REQUEST_STALE_S = 30
    stale = abandoned_request(estate, "crashed-key-0001", age_s=31)
    response = post_open(api(estate.resident.user), estate.door, "crashed-key-0001")
    assert response.status_code == 200, response.json()
    assert (response.json()["result"], response.json()["replayed"]) == ("opened", False)
    [entry] = opens(estate)
    assert entry["request_id"] == stale.partner_request_id  # the same partner request, sent again
    stale.refresh_from_db()
    assert stale.result == OpenRequest.Result.OPENED
    assert OpenRequest.objects.count() == 1
    # and from now on it is an ordinary replay
    again = post_open(api(estate.resident.user), estate.door, "crashed-key-0001")
    assert (again.json()["result"], again.json()["replayed"]) == ("opened", True)
    assert len(opens(estate)) == 1


def test_a_pending_request_within_the_stale_timeout_is_409(estate, settings):
    settings.OPEN_REQUEST_STALE_S = 30
    running = abandoned_request(estate, "running-key-0001", age_s=25)
    response = post_open(api(estate.resident.user), estate.door, "running-key-0001")
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/open-in-progress"
    assert opens(estate) == []
    running.refresh_from_db()
    assert (running.result, running.completed_at) == (OpenRequest.Result.PENDING, None)
    assert not AuditEvent.objects.filter(action=Action.RESIDENT_OPEN).exists()


def test_a_taken_over_request_restarts_the_stale_clock(estate, settings):
    """Once a retry has claimed a stale request, a second retry right after it is 409, not a second takeover."""
    settings.OPEN_REQUEST_STALE_S = 30
    stale = abandoned_request(estate, "crashed-key-0002", age_s=120)
    OpenRequest.objects.filter(pk=stale.pk).update(completed_at=timezone.now() - datetime.timedelta(seconds=5))
    response = post_open(api(estate.resident.user), estate.door, "crashed-key-0002")
    assert response.status_code == 409
    assert opens(estate) == []


# --- open bursts (anomaly detection) -------------------------------------------------------------


def test_a_burst_of_opens_by_one_resident_raises_an_open_burst_alert(estate, settings):
    from access.models import SecurityAlert
    from core.security.identifiers import pseudonymous_ref

    settings.ACCESS_ANOMALY = {"max_opens_per_resident": 2}
    client = api(estate.resident.user)
    for _ in range(3):
        assert post_open(client, estate.door).json()["result"] == "opened"  # alerting does not block the resident
    alert = SecurityAlert.objects.get()
    assert (alert.kind, alert.partner_id, alert.scope, alert.observed, alert.partner_suspended) == (
        "open_burst", estate.partner.pk, pseudonymous_ref("resident", estate.resident.pk), 3, False)
    # a replay is not an open
    key = "replayed-key-0001"
    post_open(api(estate.other.user), estate.door, key)
    post_open(api(estate.other.user), estate.door, key)
    post_open(api(estate.other.user), estate.door, key)
    assert SecurityAlert.objects.count() == 1
