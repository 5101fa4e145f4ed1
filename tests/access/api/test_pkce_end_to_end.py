"""The whole path the app takes: PKCE login with a real OAuth2 client library, then the resident
API over real HTTP (live_server), opening a door through the sandbox partner exactly once."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests import factories
from tests.core.test_oauth_flow import PASSWORD, full_pkce_flow, mobile_app  # noqa: F401 - fixture

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _oauthlib_over_http(monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # live_server is plain HTTP on loopback


def test_pkce_token_lists_devices_and_opens_a_door_once(live_server, mobile_app, estate):  # noqa: F811
    building = estate.door.building
    person = factories.resident(unit_=factories.unit(building_=building), username="resident1", password=PASSWORD)
    factories.grant(resident_=person, building_=building)
    token = full_pkce_flow(live_server.url, scope="devices:read doors:open")
    auth = {"Authorization": f"Bearer {token['access_token']}"}

    devices = requests.get(f"{live_server.url}/api/v1/devices", headers=auth, timeout=10)
    assert devices.status_code == 200
    assert estate.door.pk in {d["id"] for d in devices.json()}

    key = str(uuid.uuid4())
    url = f"{live_server.url}/api/v1/devices/{estate.door.pk}/open"
    first = requests.post(url, headers={**auth, "Idempotency-Key": key}, timeout=15)
    again = requests.post(url, headers={**auth, "Idempotency-Key": key}, timeout=15)
    assert (first.status_code, first.json()["result"], first.json()["replayed"]) == (200, "opened", False)
    assert (again.status_code, again.json()["result"], again.json()["replayed"]) == (200, "opened", True)
    entries = [e for e in estate.sandbox.control.log()["entries"] if e["operation"] == "device.open"]
    assert len(entries) == 1

    barrier = requests.post(f"{live_server.url}/api/v1/devices/{estate.barrier.pk}/open",
                            headers={**auth, "Idempotency-Key": str(uuid.uuid4())}, timeout=15)
    assert (barrier.status_code, barrier.json()["required_scope"]) == (403, "barriers:open")


def test_concurrent_retries_with_one_key_open_once(live_server, estate):
    from concurrent.futures import ThreadPoolExecutor

    from tests.access.api.conftest import make_token

    auth = {"Authorization": f"Bearer {make_token(estate.resident.user)}", "Idempotency-Key": str(uuid.uuid4())}
    url = f"{live_server.url}/api/v1/devices/{estate.door.pk}/open"
    with ThreadPoolExecutor(max_workers=5) as pool:
        responses = list(pool.map(lambda _: requests.post(url, headers=auth, timeout=15), range(5)))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 409}
    assert 200 in statuses
    assert all(r.json()["result"] == "opened" for r in responses if r.status_code == 200)
    entries = [e for e in estate.sandbox.control.log()["entries"] if e["operation"] == "device.open"]
    assert len(entries) == 1


def test_concurrent_retries_of_an_abandoned_request_take_it_over_once(live_server, estate, settings):
    import datetime
    from concurrent.futures import ThreadPoolExecutor

    from django.utils import timezone

    from access.models import OpenRequest
    from tests.access.api.conftest import make_token

    settings.OPEN_REQUEST_STALE_S = 30
    key = str(uuid.uuid4())
    OpenRequest.objects.create(  # left pending by a process that died during the partner call
        user=estate.resident.user, idempotency_key=key, device=estate.door, partner_request_id=str(uuid.uuid4()),
        created_at=timezone.now() - datetime.timedelta(seconds=60),
    )
    auth = {"Authorization": f"Bearer {make_token(estate.resident.user)}", "Idempotency-Key": key}
    url = f"{live_server.url}/api/v1/devices/{estate.door.pk}/open"
    with ThreadPoolExecutor(max_workers=5) as pool:
        responses = list(pool.map(lambda _: requests.post(url, headers=auth, timeout=15), range(5)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 409}
    assert [r.json()["replayed"] for r in responses if r.status_code == 200].count(False) == 1
    entries = [e for e in estate.sandbox.control.log()["entries"] if e["operation"] == "device.open"]
    assert len(entries) == 1
    assert OpenRequest.objects.get().result == OpenRequest.Result.OPENED
