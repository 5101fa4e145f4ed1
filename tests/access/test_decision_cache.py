"""The decision path's per-process caches (core.cache.versioned) against real commits.

These tests commit (transactional database), so the change-log triggers fire at commit as in
production: a change is seen by the next decision, an uncommitted one is not, a change drops only
the facts it changed (another resident's stay), telemetry and residents' tokens record nothing, a
process that fell behind the log forgets everything, and a steady-state decision costs one statement
(the audit insert that checks, in the same statement, that nothing changed since the process's last
read of the log: core.cache.versioned.assume_unchanged).
"""

import threading
import time
import uuid
from types import SimpleNamespace

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model

from access.models import Device, GuestPass, Resident, Vehicle, VehiclePlateToken
from access.policy import access_data
from access.services.devices import device_set_online
from access.services.grants import grant_suspend
from access.services.guest_passes import guest_pass_create, guest_pass_revoke
from access.services.vehicles import vehicle_create, vehicle_delete
from audit.models import AuditEvent
from consent.models import Consent
from consent.services import consent_revoke
from core.cache import versioned
from core.models import DataChange, DataVersion
from partners.models import PartnerContract
from partners.services import partner_suspend
from tests import factories
from tests.access.decision_scene import build_scene
from tests.partners import partner_api

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller

URL = "/partner/v1/access-decisions"


def batch() -> int:
    """The newest batch of changes committed (a flush between transactional tests removes the row)."""
    row = DataVersion.objects.filter(scope="changes").first()
    return row.value if row else 0


def tags_since(before: int) -> set[str]:
    return set(DataChange.objects.filter(seq__gt=before).values_list("tag", flat=True))


@pytest.fixture
def scene(partner_caller):
    return build_scene(partner_caller)


@pytest.fixture
def neighbour(scene):
    """Another resident of the scene's building with a grant there and a car."""
    building = scene.device.building
    resident = factories.resident(unit_=factories.unit(building_=building))
    grant = factories.grant(resident_=resident, building_=building)
    vehicle = factories.vehicle(resident_=resident)
    token = VehiclePlateToken.objects.get(vehicle=vehicle, partner=scene.caller.partner).token
    return SimpleNamespace(resident=resident, grant=grant, token=token)


def decide(scene, *, kind="plate", device_ref=None, token=None) -> tuple[int, str | None]:
    credential = token or (scene.plate_token if kind == "plate" else scene.subject_id)
    body = {"device_ref": device_ref or scene.device.partner_device_ref,
            "credential": {"type": kind, "token": credential},
            "request_id": "req-" + uuid.uuid4().hex[:8], "observed_at": timezone.now().isoformat()}
    response = scene.caller.post(URL, body)
    return response.status_code, response.json().get("reason")


def test_steady_state_decision_is_one_statement(scene):
    assert decide(scene) == (200, "granted")  # fills the caches
    audited = AuditEvent.objects.filter(action="access.decision").count()
    with CaptureQueriesContext(connection) as queries:
        assert decide(scene) == (200, "granted")
    assert len(queries.captured_queries) == 1, queries.captured_queries
    sql = queries.captured_queries[0]["sql"]
    assert "core_dataversion" in sql  # the version check ...
    assert 'INSERT INTO "audit_event"' in sql  # ... and the audit event, in one statement
    assert AuditEvent.objects.filter(action="access.decision").count() == audited + 1


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


@pytest.mark.parametrize(("change", "expected", "tags"), [
    (_suspend_grant, (200, "grant_suspended"), lambda scene: {f"r:{scene.resident.pk}"}),
    (_delete_vehicle, (200, "unknown_credential"), lambda scene: {f"r:{scene.resident.pk}", f"t:{scene.plate_token}"}),
    (_suspend_resident, (200, "resident_suspended"), lambda scene: {f"r:{scene.resident.pk}"}),
    (_end_contract, (200, "contract_not_covering"), lambda scene: {"access"}),
    (_move_device, (404, None), lambda scene: {"access"}),
])
def test_a_committed_change_is_seen_by_the_next_decision(scene, change, expected, tags):
    assert decide(scene) == (200, "granted")
    before = batch()
    change(scene)
    assert batch() == before + 1  # one batch per committed transaction
    assert tags_since(before) == tags(scene)  # what it changed, and nothing else
    status, reason = decide(scene)
    assert (status, reason if status == 200 else None) == expected


def test_a_revoked_consent_stops_faces_at_once(scene):
    assert decide(scene, kind="face") == (200, "granted")
    before = batch()
    consent_revoke(consent=Consent.objects.get(pk=scene.consent.pk))
    assert f"r:{scene.resident.pk}" in tags_since(before)
    assert decide(scene, kind="face") == (200, "no_consent")


def test_a_change_to_one_resident_keeps_every_other_residents_facts(scene, neighbour):
    assert decide(scene) == (200, "granted")
    assert decide(scene, token=neighbour.token) == (200, "granted")
    grant_suspend(grant=neighbour.grant)
    with CaptureQueriesContext(connection) as queries:
        assert decide(scene) == (200, "granted")
    # the checked insert finds the counter moved (nothing written), the change read, the audit insert:
    # none of this resident's facts is loaded again
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 3, statements
    assert "core_dataversion" in statements[0]
    assert "core_datachange" in statements[1]
    assert statements[2].startswith('INSERT INTO "audit_event"')
    assert decide(scene, token=neighbour.token) == (200, "grant_suspended")


def test_a_car_registered_for_an_unknown_plate_passes_at_once(scene):
    plate = factories.unique_plate()
    vehicle = vehicle_create(resident=scene.resident, plate=plate)
    token = VehiclePlateToken.objects.get(vehicle=vehicle, partner=scene.caller.partner).token
    vehicle_delete(vehicle=Vehicle.objects.get(pk=vehicle.pk))
    assert decide(scene, token=token) == (200, "unknown_credential")  # kept: an unknown plate is a fact too
    vehicle_create(resident=scene.resident, plate=plate)
    assert decide(scene, token=token) == (200, "granted")


def test_a_guest_pass_for_an_unknown_plate_opens_at_once_and_stops_when_revoked(scene):
    plate = factories.unique_plate()
    guest_pass = guest_pass_create(resident=scene.resident, device=scene.device, plate=plate)
    token = guest_pass.plate_token
    guest_pass_revoke(guest_pass=guest_pass)
    assert decide(scene, token=token) == (200, "unknown_credential")  # kept
    guest_pass = guest_pass_create(resident=scene.resident, device=scene.device, plate=plate)
    assert decide(scene, token=token) == (200, "guest_pass")
    guest_pass_revoke(guest_pass=GuestPass.objects.get(pk=guest_pass.pk))
    assert decide(scene, token=token) == (200, "unknown_credential")


def test_a_fact_loaded_before_a_change_is_not_kept_past_it(scene):
    """A thread that read the log before a change stores what it loaded after another thread has
    read the change: the entry carries the older batch, so the change makes it stale."""
    tag = f"r:{scene.resident.pk}"
    old = versioned.current_version()
    grant_suspend(grant=scene.grant)
    new = versioned.current_version()
    assert new > old
    access_data.get(("probe",), old, lambda: "loaded before the change", (tag,))
    assert access_data.get(("probe",), new, lambda: "loaded after it", (tag,)) == "loaded after it"
    assert access_data.get(("probe",), new, lambda: "not loaded again", (tag,)) == "loaded after it"


def test_a_process_behind_a_pruned_log_forgets_everything(scene, neighbour):
    assert decide(scene) == (200, "granted")
    assert decide(scene, token=neighbour.token) == (200, "granted")
    grant_suspend(grant=neighbour.grant)
    assert versioned.changes_prune(kept_s=0) >= 1  # gone before this process has read it
    assert not DataChange.objects.exists()
    assert decide(scene, token=neighbour.token) == (200, "grant_suspended")
    assert decide(scene) == (200, "granted")


def test_a_prune_keeps_what_is_recent(scene):
    before = batch()
    grant_suspend(grant=scene.grant)
    assert versioned.changes_prune() == 0
    assert tags_since(before) == {f"r:{scene.resident.pk}"}


def test_more_changes_than_one_read_takes_make_the_process_forget_everything(scene, neighbour, monkeypatch):
    building = scene.device.building
    third = factories.resident(unit_=factories.unit(building_=building))
    third_grant = factories.grant(resident_=third, building_=building)
    third_token = VehiclePlateToken.objects.get(vehicle=factories.vehicle(resident_=third),
                                                partner=scene.caller.partner).token
    for token in (scene.plate_token, neighbour.token, third_token):
        assert decide(scene, token=token) == (200, "granted")
    monkeypatch.setattr(versioned, "CHANGES_READ_LIMIT", 1)  # a read returns 2 of the 3 tags
    with transaction.atomic():
        for grant in (scene.grant, neighbour.grant, third_grant):
            grant_suspend(grant=grant)
    for token in (scene.plate_token, neighbour.token, third_token):
        assert decide(scene, token=token) == (200, "grant_suspended")


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
    before = batch()
    device_set_online(device=Device.objects.get(pk=scene.device.pk), online=False)
    assert batch() == before
    assert tags_since(before) == set()


def test_a_residents_token_churn_keeps_the_partner_token_cache(scene):
    Application = get_application_model()
    app = Application.objects.create(name="resident app", client_type=Application.CLIENT_PUBLIC,
                                     authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
                                     redirect_uris="https://app.example/cb")
    token = get_access_token_model().objects.create(
        application=app, token=uuid.uuid4().hex, expires=timezone.now() + timezone.timedelta(hours=1), scope="read",
    )
    before = batch()
    token.delete()
    assert batch() == before
    assert tags_since(before) == set()


def test_partner_suspension_refuses_the_next_call(scene):
    assert decide(scene) == (200, "granted")
    before = batch()
    partner_suspend(partner_id=scene.caller.partner.pk, reason="test")
    assert "tokens" in tags_since(before)
    assert decide(scene)[0] in (401, 403)


# --- the version check rides on the audit insert ----------------------------------------------


def _decision_events(**filters) -> list[str]:
    return list(AuditEvent.objects.filter(action="access.decision", **filters).values_list("reason", flat=True))


def test_a_change_committed_while_a_decision_is_made_is_seen_by_its_audit_insert(scene, monkeypatch):
    """The facts are read from the cache, then - before the audit insert - a suspension commits on
    another connection: the insert's own check sees it, nothing is written from the stale facts, and
    the answer and its one event say what the data says at the insert."""
    from access.services import decisions

    assert decide(scene) == (200, "granted")  # the process has read the log; the facts are cached
    real_admit, admitted = decisions._admit, []

    def admit_then_commit_a_suspension(*args, **kwargs):
        admitted.append(kwargs.get("denied"))
        admission = real_admit(*args, **kwargs)
        if len(admitted) == 1:
            thread = threading.Thread(target=lambda: (grant_suspend(grant=scene.grant), connection.close()))
            thread.start()
            thread.join()
        return admission

    monkeypatch.setattr(decisions, "_admit", admit_then_commit_a_suspension)
    before = set(AuditEvent.objects.filter(action="access.decision").values_list("pk", flat=True))
    assert decide(scene) == (200, "grant_suspended")
    new = AuditEvent.objects.filter(action="access.decision").exclude(pk__in=before)
    assert list(new.values_list("reason", flat=True)) == ["grant_suspended"]  # no "granted" from stale facts
    assert admitted == [False]  # counted once against the limits, though decided twice


def test_a_device_added_after_the_last_read_is_found_at_once(scene):
    """"No such device" is answered only from a fresh read: the process has cached that the ref is
    unknown, the data no longer says so."""
    assert decide(scene) == (200, "granted")
    assert decide(scene, device_ref="gate-to-come") == (404, None)  # kept: no such device
    factories.device(building_=scene.device.building, partner_=scene.caller.partner, kind="barrier",
                     partner_device_ref="gate-to-come")
    assert decide(scene, device_ref="gate-to-come") == (200, "granted")


def test_a_partner_let_in_again_after_the_last_read_passes_at_once(scene):
    """A refusal is given only from a fresh read of the log: the cached token says the partner is
    suspended, the data no longer does."""
    from partners.models import Partner

    Partner.objects.filter(pk=scene.caller.partner.pk).update(suspended_at=timezone.now())
    assert decide(scene)[0] == 403
    Partner.objects.filter(pk=scene.caller.partner.pk).update(suspended_at=None)
    assert decide(scene) == (200, "granted")
    assert _decision_events() == ["granted"]


def test_the_caches_count_their_hits_and_loads(scene):
    assert decide(scene) == (200, "granted")
    hits, loads = versioned.lookups()["access"]
    assert decide(scene) == (200, "granted")  # device, plate owner, grants... all kept
    after_hits, after_loads = versioned.lookups()["access"]
    assert after_loads == loads
    assert after_hits > hits
    assert decide(scene, token=scene.plate_token + "0") == (200, "unknown_credential")  # a plate not seen: loaded
    assert versioned.lookups()["access"][1] > loads


def test_an_unchanged_log_is_not_read_again(scene):
    assert decide(scene) == (200, "granted")
    read = versioned._changes.mark
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert decide(scene) == (200, "granted")
    assert not [query for query in queries.captured_queries if "core_datachange" in query["sql"]]
    assert versioned._changes.mark == read


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


def test_the_scheduler_prunes_the_change_log(scene):
    from core.tasks import data_changes_prune
    from smarthome.schedule import BEAT_SCHEDULE

    assert BEAT_SCHEDULE["core-data-changes-prune"]["task"] == "core.tasks.data_changes_prune"
    grant_suspend(grant=scene.grant)
    assert data_changes_prune.apply().get() == 0  # recent changes stay
    DataChange.objects.update(changed_at=timezone.now() - timezone.timedelta(seconds=versioned.CHANGES_KEPT_S + 1))
    assert data_changes_prune.apply().get() >= 1
    assert not DataChange.objects.exists()


# --- the statements every decision sends are prepared on the server ---------------------------


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_a_decisions_statements_are_prepared_once_per_connection(scene):
    assert decide(scene) == (200, "granted")  # the process's first: reads the log, then inserts
    assert decide(scene) == (200, "granted")  # on the batch read: the checked insert
    statements = _prepared_statements()
    assert [s for s in statements if s.startswith('INSERT INTO "audit_event"')] != []
    assert [s for s in statements if "core_datachange" in s] != []
    assert [s for s in statements if s.startswith("WITH counter") and "audit_event" in s] != []
    for _ in range(3):
        assert decide(scene) == (200, "granted")
    assert _prepared_statements() == statements  # prepared once (per parameter types), then only executed
    assert AuditEvent.objects.filter(action="access.decision").count() == 5


@pytest.fixture
def without_prepared_statements(monkeypatch):
    """DATABASE_PREPARED_STATEMENTS=false: no prepare threshold for psycopg, on a new connection."""
    monkeypatch.delitem(connection.settings_dict["OPTIONS"], "prepare_threshold")
    connection.close()
    yield
    monkeypatch.undo()
    connection.close()


def test_without_prepared_statements_nothing_is_prepared(scene, without_prepared_statements):
    for _ in range(3):
        assert decide(scene) == (200, "granted")
    assert _prepared_statements() == []
    assert AuditEvent.objects.filter(action="access.decision").count() == 3
    assert decide(scene, token=scene.plate_token + "0") == (200, "unknown_credential")  # still decides, still fresh
