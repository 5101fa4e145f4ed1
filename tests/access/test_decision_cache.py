"""The decision path's per-process caches (core.cache.versioned) against real commits.

These tests commit (transactional database), so the data-version triggers fire at commit as in
production: a change is seen by the next decision, an uncommitted one is not, telemetry and
residents' tokens do not empty the caches, and a steady-state decision costs two statements.
"""

import threading
import time
import uuid

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model

from access.models import Device, Resident, Vehicle
from access.services.devices import device_set_online
from access.services.grants import grant_suspend
from access.services.vehicles import vehicle_delete
from audit.models import AuditEvent
from consent.models import Consent
from consent.services import consent_revoke
from core.models import DataVersion
from partners.models import PartnerContract
from partners.services import partner_suspend
from tests.access.decision_scene import build_scene
from tests.partners import partner_api

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller

URL = "/partner/v1/access-decisions"


def version(scope: str) -> int:
    row = DataVersion.objects.filter(scope=scope).first()  # a flush between transactional tests removes rows
    return row.value if row else 0


@pytest.fixture
def scene(partner_caller):
    return build_scene(partner_caller)


def decide(scene, *, kind="plate", device_ref=None) -> tuple[int, str | None]:
    body = {"device_ref": device_ref or scene.device.partner_device_ref,
            "credential": {"type": kind, "token": scene.plate_token if kind == "plate" else scene.subject_id},
            "request_id": "req-" + uuid.uuid4().hex[:8], "observed_at": timezone.now().isoformat()}
    response = scene.caller.post(URL, body)
    return response.status_code, response.json().get("reason")


def test_steady_state_decision_is_two_statements(scene):
    assert decide(scene) == (200, "granted")  # fills the caches
    with CaptureQueriesContext(connection) as queries:
        assert decide(scene) == (200, "granted")
    statements = [query["sql"].split()[0:4] for query in queries.captured_queries]
    assert len(statements) == 2, queries.captured_queries
    assert "core_dataversion" in queries.captured_queries[0]["sql"]
    assert queries.captured_queries[1]["sql"].startswith('INSERT INTO "audit_event"')


def test_without_the_cache_every_fact_is_loaded(scene, settings):
    settings.VERSIONED_CACHE = False
    decide(scene)
    with CaptureQueriesContext(connection) as queries:
        assert decide(scene) == (200, "granted")
    assert len(queries.captured_queries) >= 5  # token, device, contracts, plate, grants, audit


def _suspend_grant(scene):
    grant_suspend(grant=scene.grant)


def _delete_vehicle(scene):
    vehicle_delete(vehicle=Vehicle.objects.get(pk=scene.vehicle.pk))


def _suspend_resident(scene):
    Resident.objects.filter(pk=scene.resident.pk).update(suspended=True)


def _end_contract(scene):
    PartnerContract.objects.filter(partner=scene.caller.partner).update(valid_until=timezone.now())


def _move_device(scene):
    Device.objects.filter(pk=scene.device.pk).update(partner_device_ref="moved-" + uuid.uuid4().hex[:6])


@pytest.mark.parametrize(("change", "expected"), [
    (_suspend_grant, (200, "grant_suspended")),
    (_delete_vehicle, (200, "unknown_credential")),
    (_suspend_resident, (200, "resident_suspended")),
    (_end_contract, (200, "contract_not_covering")),
    (_move_device, (404, None)),
])
def test_a_committed_change_is_seen_by_the_next_decision(scene, change, expected):
    assert decide(scene) == (200, "granted")
    before = version("access")
    change(scene)
    assert version("access") == before + 1  # one bump per committed transaction
    status, reason = decide(scene)
    assert (status, reason if status == 200 else None) == expected


def test_a_revoked_consent_stops_faces_at_once(scene):
    assert decide(scene, kind="face") == (200, "granted")
    consent_revoke(consent=Consent.objects.get(pk=scene.consent.pk))
    assert decide(scene, kind="face") == (200, "no_consent")


def test_an_uncommitted_change_is_not_seen_until_commit(scene):
    assert decide(scene) == (200, "granted")
    changed, release, done = threading.Event(), threading.Event(), threading.Event()

    def writer():
        try:
            with transaction.atomic():
                grant_suspend(grant=scene.grant)
                changed.set()
                release.wait(10)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert changed.wait(10)
    assert decide(scene) == (200, "granted")  # not committed yet: neither data nor version changed
    release.set()
    assert done.wait(10)
    thread.join()
    assert decide(scene) == (200, "grant_suspended")


def test_device_telemetry_keeps_the_caches(scene):
    before = version("access")
    device_set_online(device=Device.objects.get(pk=scene.device.pk), online=False)
    assert version("access") == before


def test_a_residents_token_churn_keeps_the_partner_token_cache(scene):
    Application = get_application_model()
    app = Application.objects.create(name="resident app", client_type=Application.CLIENT_PUBLIC,
                                     authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
                                     redirect_uris="https://app.example/cb")
    token = get_access_token_model().objects.create(
        application=app, token=uuid.uuid4().hex, expires=timezone.now() + timezone.timedelta(hours=1), scope="read",
    )
    before = version("tokens")
    token.delete()
    assert version("tokens") == before


def test_partner_suspension_refuses_the_next_call(scene):
    assert decide(scene) == (200, "granted")
    before = version("tokens")
    partner_suspend(partner_id=scene.caller.partner.pk, reason="test")
    assert version("tokens") > before
    assert decide(scene)[0] in (401, 403)


# --- the version read doubles as the connection health check --------------------------------


def _new_request(db) -> None:
    """What close_old_connections does when a request starts (the test client leaves it out)."""
    db.health_check_done = False


def _count_probes(monkeypatch, db) -> list:
    probes = []
    real = db.is_usable
    monkeypatch.setattr(db, "is_usable", lambda: probes.append(1) or real())
    return probes


def test_a_decision_runs_no_separate_health_check(scene, monkeypatch):
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    assert decide(scene) == (200, "granted")
    probes = _count_probes(monkeypatch, connection)
    _new_request(connection)
    assert decide(scene) == (200, "granted")
    assert probes == []  # the version read was the probe
    assert connection.health_check_done
    _new_request(connection)
    scene.caller.client.get("/readyz")  # another endpoint's first query is not a version read
    assert probes == [1]


def test_a_connection_that_died_between_requests_is_replaced(scene):
    assert decide(scene) == (200, "granted")
    dead = connection.connection.info.backend_pid
    audited = AuditEvent.objects.filter(action="access.decision").count()
    killer = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [dead])
            for _ in range(100):  # the backend exits asynchronously
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [dead])
                if cursor.fetchone()[0] == 0:
                    break
                time.sleep(0.02)
    finally:
        killer.close()
    _new_request(connection)
    assert decide(scene) == (200, "granted")  # not a 500: the version read reconnected
    assert connection.connection.info.backend_pid != dead
    assert AuditEvent.objects.filter(action="access.decision").count() == audited + 1
