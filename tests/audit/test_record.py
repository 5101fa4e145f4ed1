"""record(): the vocabulary, refusal of free text, and the append-only guarantees."""

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from audit.actions import Action, ActorKind, Outcome
from audit.models import AppendOnlyViolation, AuditCheckpoint, AuditEvent, AuditLog, AuditSeal
from audit.sealing import audit_seal
from audit.services import record
from core.http.request_context import request_id_var

pytestmark = pytest.mark.django_db


def event(**overrides):
    fields = {"action": Action.PARTNER_OPEN, "outcome": Outcome.SUCCESS}
    fields.update(overrides)
    return record(**fields)


def test_record_stores_typed_fields():
    e = event(actor_kind=ActorKind.RESIDENT, actor_ref="user:3fa9c0ffee", object_type="device",
              object_ref="dev-17", partner_id=3, company_id=5, building_id=9, device_ref="gate-1",
              reason="no_grant", request_id="req-1", source_ip="2001:DB8::0001", latency_ms=12.3456,
              http_status=200, origin_request_id="resident-req-9")
    e = AuditEvent.objects.get(pk=e.pk)
    assert (e.actor_kind, e.actor_ref, e.company_id, e.source_ip) == ("resident", "user:3fa9c0ffee", 5, "2001:db8::1")
    assert str(e.latency_ms) == "12.346"
    assert (e.request_id, e.origin_request_id) == ("req-1", "resident-req-9")


def test_request_id_defaults_to_the_current_request():
    token = request_id_var.set("abc123")
    try:
        assert event().request_id == "abc123"
    finally:
        request_id_var.reset(token)
    assert event().request_id == ""  # outside a request


@pytest.mark.parametrize(
    "overrides",
    [
        {"action": "partner.unknown"},
        {"outcome": "fine"},
        {"actor_kind": "robot"},
        {"actor_ref": "Ivan Petrov"},
        {"object_ref": "ivan@example.com"},
        {"device_ref": "x" * 65},
        {"request_id": "a b"},
        {"origin_request_id": "Ivan Petrov"},
        {"reason": "Resident said: hello"},
        {"object_type": "Device"},
        {"partner_id": "3"},
        {"company_id": -1},
        {"building_id": True},
        {"source_ip": "not-an-ip"},
        {"latency_ms": -1},
        {"latency_ms": float("nan")},
        {"http_status": 99},
        {"actor_ref": "+7 900 123-45-67"},
    ],
)
def test_free_text_and_bad_values_are_refused(overrides):
    before = AuditEvent.objects.count()
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        event(**overrides)
    assert AuditEvent.objects.count() == before


def test_database_constraints_refuse_free_text_written_around_record():
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.create(action="partner.open", outcome="success", actor_kind="system",
                                  actor_ref="Ivan Petrov")


def test_django_refuses_update_and_delete():
    e = event()
    e.reason = "changed"
    with pytest.raises(AppendOnlyViolation):
        e.save()
    with pytest.raises(AppendOnlyViolation):
        e.delete()
    with pytest.raises(AppendOnlyViolation):
        AuditEvent.objects.filter(pk=e.pk).update(reason="changed")
    with pytest.raises(AppendOnlyViolation):
        AuditEvent.objects.filter(pk=e.pk).delete()
    with pytest.raises(AppendOnlyViolation):
        AuditEvent.objects.bulk_update([e], ["reason"])
    audit_seal()
    with pytest.raises(AppendOnlyViolation):
        AuditSeal.objects.all().delete()
    with pytest.raises(AppendOnlyViolation):
        AuditLog.objects.all().update(name="platform")
    with pytest.raises(AppendOnlyViolation):
        AuditCheckpoint.objects.all().update(root_hash="0" * 64)
    assert AuditEvent.objects.get(pk=e.pk).reason == ""


@pytest.mark.postgres
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_event SET reason = 'forged' WHERE id = %s",
        "DELETE FROM audit_event WHERE id = %s",
        "UPDATE audit_log_checkpoint SET leaf_hashes = '\\x00' WHERE tree_size >= %s - %s + 1",
        "UPDATE audit_log_checkpoint SET root_hash = 'forged' WHERE tree_size >= %s - %s + 1",
        "DELETE FROM audit_log_checkpoint WHERE tree_size >= %s - %s + 1",
        "UPDATE audit_seal SET high_id = 0 WHERE high_id >= %s",
        "DELETE FROM audit_seal WHERE high_id >= %s",
        "UPDATE audit_log SET name = 'forged' WHERE id > %s - %s",
    ],
)
def test_postgresql_trigger_rejects_update_and_delete(sql):
    assert connection.vendor == "postgresql"
    e = event(company_id=3)
    audit_seal()
    params = [e.pk] * sql.count("%s")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    assert AuditEvent.objects.get(pk=e.pk).reason == ""
    assert AuditSeal.objects.filter(high_id=e.pk).exists()
    assert AuditLog.objects.get().name == "company:3"
    assert AuditCheckpoint.objects.exclude(root_hash="forged").count() == AuditCheckpoint.objects.count() == 1
    assert len(bytes(AuditCheckpoint.objects.get().leaf_hashes)) == 32


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["audit_event", "audit_leaf", "audit_checkpoint", "audit_prune", "audit_log",
                                   "audit_seal", "audit_log_checkpoint", "audit_log_prune", "audit_log_link"])
def test_postgresql_trigger_rejects_truncate(table):
    """TRUNCATE bypasses row triggers; a statement trigger refuses it unless the session says
    audit.allow_truncate (the test server does, for Django's flush: switched off here)."""
    assert connection.vendor == "postgresql"
    e = event()
    audit_seal()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL audit.allow_truncate = 'off'")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # deferred foreign-key checks would refuse TRUNCATE first
        with pytest.raises(DatabaseError, match="append-only: TRUNCATE"), transaction.atomic():
            cursor.execute(f"TRUNCATE {table} CASCADE")
    assert AuditEvent.objects.filter(pk=e.pk).exists()
    assert AuditSeal.objects.filter(high_id=e.pk).exists()
    assert AuditCheckpoint.objects.count() == 1

