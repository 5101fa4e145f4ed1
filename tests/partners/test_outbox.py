"""The transactional outbox against the real sandbox partner (HTTPS + mTLS), real PostgreSQL and
Redis. Tasks run eagerly in this process (the suite's default); `test_outbox_resilience.py`
runs real workers. Transactional tests: commits and on_commit hooks are the real ones.
"""

from __future__ import annotations

import datetime
import time

import pytest
from django.db import transaction
from django.utils import timezone
from prometheus_client import REGISTRY

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from core.observability.scrape import scrape_registry
from partners.models import OutboxMessage
from partners.outbox.services import (
    outbox_backlog,
    outbox_deliver,
    outbox_dispatch,
    outbox_enqueue,
    outbox_retry_now,
)
from partners.signals import outbox_delivered
from tests.partners import outbox_fixtures
from tests.partners.outbox_fixtures import face_payload

# the shared fixtures, made visible to pytest in this module
client_settings = outbox_fixtures.client_settings
sandbox_partner = outbox_fixtures.sandbox_partner

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

Status = OutboxMessage.Status
SUBJECT = "sub_Zm9vYmFyYmF6"


@pytest.fixture
def delivered_signals():
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    outbox_delivered.connect(receiver, dispatch_uid="test-outbox-receiver")
    yield received
    outbox_delivered.disconnect(dispatch_uid="test-outbox-receiver")


def operations_logged(sandbox) -> list[tuple[str, str]]:
    return [(e["operation"], e["request_id"]) for e in sandbox.control.log()["entries"]]


def make_due(*messages: OutboxMessage) -> None:
    OutboxMessage.objects.filter(pk__in=[m.pk for m in messages]).update(next_attempt_at=timezone.now())


def fresh(message: OutboxMessage) -> OutboxMessage:
    return OutboxMessage.objects.get(pk=message.pk)


def test_enqueue_outside_a_transaction_is_refused(sandbox_partner):
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete", ordering_key="s",
                       payload={"subject": "s"})
    assert OutboxMessage.objects.count() == 0


def test_rolled_back_enqueue_sends_nothing(sandbox_partner, clean_sandbox):
    def change_that_fails_after_the_enqueue():
        with transaction.atomic():
            outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete",
                           ordering_key=f"subject:{SUBJECT}", payload={"subject": SUBJECT})
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        change_that_fails_after_the_enqueue()
    assert OutboxMessage.objects.count() == 0
    assert clean_sandbox.control.log()["entries"] == []
    assert clean_sandbox.control.state()["tokens_issued"] == 0


def test_message_is_delivered_after_commit_and_the_photo_purged(sandbox_partner, clean_sandbox, delivered_signals):
    with transaction.atomic():
        message = outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_put",
                                 ordering_key=f"subject:{SUBJECT}", payload=face_payload(clean_sandbox),
                                 idempotency_key="enrol-1")
        # nothing leaves before the change commits
        assert clean_sandbox.control.log()["entries"] == []
    message = fresh(message)
    assert message.status == Status.DELIVERED
    assert message.attempts == 0
    assert message.payload["jwe"] == ""  # the ciphertext is gone once the partner has it
    assert message.payload["subject"] == SUBJECT
    assert clean_sandbox.control.state()["faces"][SUBJECT]["image_size"] == len(b"\xff\xd8 a face photo")
    assert operations_logged(clean_sandbox) == [("face.enrol", "enrol-1")]
    assert [s["idempotency_key"] for s in delivered_signals] == ["enrol-1"]
    assert delivered_signals[0]["result"]["image_sha256"] == message.result["image_sha256"]
    assert AuditEvent.objects.filter(action=Action.PARTNER_FACE_ENROL, outcome=Outcome.SUCCESS,
                                     request_id="enrol-1").count() == 1
    assert AuditEvent.objects.filter(action=Action.OUTBOX_DELIVERED, object_ref=f"outbox:{message.pk}").count() == 1


def test_deletion_receipt_reaches_receivers(sandbox_partner, clean_sandbox, delivered_signals):
    with transaction.atomic():
        outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete", ordering_key=f"subject:{SUBJECT}",
                       payload={"subject": SUBJECT}, idempotency_key="delete-1")
    (signal,) = delivered_signals
    deletion = clean_sandbox.control.state()["deletions"][0]
    assert signal["operation"] == "face_delete"
    assert signal["result"]["deletion_id"] == deletion["deletion_id"]
    assert signal["partner_id"] == sandbox_partner.pk


def test_messages_with_the_same_ordering_key_are_delivered_in_order(sandbox_partner, clean_sandbox):
    clean_sandbox.control.down()
    key = f"subject:{SUBJECT}"
    with transaction.atomic():
        enrol = outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_put", ordering_key=key,
                               payload=face_payload(clean_sandbox), idempotency_key="order-enrol")
        delete = outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete", ordering_key=key,
                                payload={"subject": SUBJECT}, idempotency_key="order-delete")
    # both delivery tasks ran after commit: the first failed, the second waited its turn
    assert (fresh(enrol).status, fresh(enrol).attempts, fresh(enrol).last_error) == (Status.PENDING, 1, "connection")
    assert (fresh(delete).status, fresh(delete).attempts) == (Status.PENDING, 0)
    clean_sandbox.control.up()
    make_due(enrol, delete)
    assert outbox_deliver(message_id=delete.pk) == "blocked"
    assert clean_sandbox.control.log()["entries"] == []
    assert outbox_deliver(message_id=enrol.pk) == "delivered"  # ...and after commit dispatches the next one
    assert fresh(delete).status == Status.DELIVERED
    assert operations_logged(clean_sandbox) == [("face.enrol", "order-enrol"), ("face.delete", "order-delete")]
    assert SUBJECT not in clean_sandbox.control.state()["faces"]


def test_other_ordering_keys_are_not_held_up(sandbox_partner, clean_sandbox):
    clean_sandbox.control.set_faults(fail_next=1, error_status=503)
    with transaction.atomic():
        first = outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete", ordering_key="subject:a",
                               payload={"subject": "sub_a"})
        other = outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete", ordering_key="subject:b",
                               payload={"subject": "sub_b"})
    assert fresh(first).status == Status.PENDING
    assert fresh(other).status == Status.DELIVERED


def test_failures_back_off_exponentially_then_dead_letter(sandbox_partner, clean_sandbox, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 4
    settings.OUTBOX_BACKOFF_BASE_S = 4
    settings.OUTBOX_BACKOFF_MAX_S = 10
    clean_sandbox.control.set_faults(error_rate=1.0, error_status=502)
    dead_before = REGISTRY.get_sample_value("smarthome_outbox_dead_lettered_total",
                                            {"operation": "face_delete"}) or 0
    with transaction.atomic():
        message = outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete",
                                 ordering_key="subject:x", payload={"subject": "sub_x"})
    first = fresh(message)
    assert (first.attempts, first.last_error, first.last_http_status) == (1, "http_502", 502)
    assert outbox_deliver(message_id=message.pk) == "not_due"

    # delay after attempt n: 4 * 2^(n-1) s capped at 10, jittered to 50-100 %
    delays = [(first.next_attempt_at - first.last_attempt_at).total_seconds()]
    for attempt in (2, 3):
        make_due(message)
        assert outbox_deliver(message_id=message.pk) == "retry"
        current = fresh(message)
        assert current.attempts == attempt
        delays.append((current.next_attempt_at - current.last_attempt_at).total_seconds())
    assert 2 <= delays[0] <= 4
    assert 4 <= delays[1] <= 8
    assert 5 <= delays[2] <= 10  # 16 s capped at 10

    make_due(message)
    assert outbox_deliver(message_id=message.pk) == "dead"
    dead = fresh(message)
    assert (dead.status, dead.attempts) == (Status.DEAD, 4)
    assert dead.dead_lettered_at is not None
    assert outbox_deliver(message_id=message.pk) == "busy"  # dead letters are not delivered any more
    dead_after = REGISTRY.get_sample_value("smarthome_outbox_dead_lettered_total", {"operation": "face_delete"})
    assert dead_after - dead_before == 1
    event = AuditEvent.objects.get(action=Action.OUTBOX_DEAD_LETTERED)
    assert (event.object_ref, event.reason) == (f"outbox:{message.pk}", "http_502")
    assert clean_sandbox.control.log()["entries"] == []


def test_a_refusal_by_the_partner_is_dead_lettered_at_once(sandbox_partner, clean_sandbox):
    payload = {**face_payload(clean_sandbox), "jwe": "not.a.valid.jwe.value"}
    with transaction.atomic():
        message = outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_put", ordering_key="subject:y",
                                 payload=payload)
    dead = fresh(message)
    assert (dead.status, dead.attempts, dead.last_http_status, dead.last_error) == (Status.DEAD, 1, 422, "http_422")


def test_retry_now_puts_a_dead_letter_back_and_it_is_delivered(sandbox_partner, clean_sandbox, settings,
                                                               django_user_model):
    settings.OUTBOX_MAX_ATTEMPTS = 1
    clean_sandbox.control.set_faults(error_rate=1.0, error_status=503)
    with transaction.atomic():
        message = outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete", ordering_key="subject:z",
                                 payload={"subject": "sub_z"}, idempotency_key="retry-me")
    assert fresh(message).status == Status.DEAD
    clean_sandbox.control.clear_faults()
    admin = django_user_model.objects.create_superuser("root", "root@example.invalid", "x" * 16)
    outbox_retry_now(message=message, actor=admin)
    retried = fresh(message)
    assert (retried.status, retried.attempts, retried.dead_lettered_at) == (Status.DELIVERED, 0, None)
    assert operations_logged(clean_sandbox) == [("face.delete", "retry-me")]
    event = AuditEvent.objects.get(action=Action.ADMIN_CHANGE, reason="outbox_retry_now")
    assert event.actor_ref.startswith("user:")
    with pytest.raises(ValueError, match="delivered"):
        outbox_retry_now(message=retried)


def test_dispatcher_resends_lost_tasks_after_the_lease_only(sandbox_partner, clean_sandbox, settings):
    settings.OUTBOX_REDISPATCH_AFTER_S = 60
    # A message whose task was sent just now but lost by the broker (simulated: no task at all).
    message = OutboxMessage.objects.create(partner=sandbox_partner, operation="face_delete",
                                           ordering_key="subject:lost", payload={"subject": "sub_lost"},
                                           idempotency_key="lost-1", dispatched_at=timezone.now())
    assert outbox_backlog()["backlog"] == 1
    assert outbox_dispatch() == 0  # still within its lease: presumably in flight
    OutboxMessage.objects.filter(pk=message.pk).update(dispatched_at=timezone.now() - datetime.timedelta(seconds=61))
    assert outbox_dispatch() == 1
    assert fresh(message).status == Status.DELIVERED
    assert operations_logged(clean_sandbox) == [("face.delete", "lost-1")]
    assert scrape_registry().get_sample_value("smarthome_outbox_backlog") == 0


def test_dispatcher_sends_only_the_head_of_each_ordering_key(sandbox_partner, clean_sandbox):
    clean_sandbox.control.down()
    with transaction.atomic():
        head = outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete", ordering_key="subject:q",
                              payload={"subject": "sub_q"}, idempotency_key="q-1")
        outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete", ordering_key="subject:q",
                       payload={"subject": "sub_q"}, idempotency_key="q-2")
    clean_sandbox.control.up()
    make_due(head)
    OutboxMessage.objects.update(next_attempt_at=timezone.now(), dispatched_at=None)
    assert outbox_dispatch() == 1  # q-1; q-2 follows when q-1 is delivered
    assert operations_logged(clean_sandbox) == [("face.delete", "q-1"), ("face.delete", "q-2")]
    assert OutboxMessage.objects.filter(status=Status.DELIVERED).count() == 2


def test_open_breaker_defers_without_spending_an_attempt(sandbox_partner, clean_sandbox, settings):
    settings.PARTNER_BREAKER_FAIL_MAX = 1
    settings.PARTNER_BREAKER_RESET_S = 30
    clean_sandbox.control.set_faults(fail_next=1, error_status=503)
    with transaction.atomic():
        message = outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete", ordering_key="subject:br",
                                 payload={"subject": "sub_br"})
    assert fresh(message).attempts == 1  # that failure opened the breaker
    make_due(message)
    assert outbox_deliver(message_id=message.pk) == "deferred"
    deferred = fresh(message)
    assert (deferred.attempts, deferred.last_error) == (1, "breaker_open")
    assert 20 <= (deferred.next_attempt_at - timezone.now()).total_seconds() <= 31
    assert clean_sandbox.control.log()["entries"] == []


def _open_the_breaker(partner, sandbox, settings) -> list[OutboxMessage]:
    """The partner goes down; four messages (four ordering keys) are written: the first two fail
    (attempts spent, backing off) and open the breaker, the last two are deferred by it."""
    settings.PARTNER_BREAKER_FAIL_MAX = 2
    settings.PARTNER_BREAKER_RESET_S = 1
    sandbox.control.down()
    messages = []
    for n in range(4):
        with transaction.atomic():
            messages.append(outbox_enqueue(partner_id=partner.pk, operation="face_delete",
                                           ordering_key=f"subject:out{n}", payload={"subject": f"sub_out{n}"},
                                           idempotency_key=f"out-{n}"))
    waiting = [fresh(message) for message in messages]
    assert [(m.attempts, m.last_error) for m in waiting] == [(1, "connection"), (1, "connection"),
                                                              (0, "breaker_open"), (0, "breaker_open")]
    return waiting


def test_when_the_breaker_closes_everything_that_waited_is_sent_at_once(sandbox_partner, clean_sandbox, settings):
    waiting = _open_the_breaker(sandbox_partner, clean_sandbox, settings)
    # only the first deferred message comes back for the probe (a task with that countdown)
    assert waiting[2].dispatched_at is not None
    assert waiting[3].dispatched_at is None
    clean_sandbox.control.up()
    time.sleep(1.1)  # the breaker lets a probe through
    backing_off = waiting[:2]
    assert all(m.next_attempt_at > timezone.now() + datetime.timedelta(seconds=1) for m in backing_off)
    assert outbox_deliver(message_id=waiting[2].pk) == "delivered"  # the probe closes the breaker ...
    # ... and the two backing off and the other deferred one go at once, not at their next attempt
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {Status.DELIVERED}
    assert sorted(request_id for _, request_id in operations_logged(clean_sandbox)) == [f"out-{n}" for n in range(4)]
    assert [fresh(m).attempts for m in waiting] == [1, 1, 0, 0]  # the failures before the breaker opened count


def test_while_the_breaker_is_open_the_dispatcher_sends_one_probe_per_partner(sandbox_partner, clean_sandbox,
                                                                               settings):
    waiting = _open_the_breaker(sandbox_partner, clean_sandbox, settings)
    OutboxMessage.objects.update(next_attempt_at=timezone.now(), dispatched_at=None)
    assert outbox_dispatch() == 1
    assert clean_sandbox.control.log()["entries"] == []  # the partner is still down: the probe failed
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {Status.PENDING}
    assert len(waiting) == 4


def test_allowlist_sync_through_the_outbox(sandbox_partner, clean_sandbox):
    entries = [{"type": "plate", "token": "tok-a", "device_refs": ["gate-1"]}]
    with transaction.atomic():
        outbox_enqueue(partner_id=sandbox_partner.pk, operation="allowlist_put", ordering_key="site:s1",
                       payload={"site_ref": "s1", "version": 1, "entries": entries})
        outbox_enqueue(partner_id=sandbox_partner.pk, operation="allowlist_patch", ordering_key="site:s1",
                       payload={"site_ref": "s1", "version": 2, "upserts": [
                           {"type": "plate", "token": "tok-b", "device_refs": ["gate-1"]}], "removals": [
                           {"type": "plate", "token": "tok-a"}]})
    allowlist = clean_sandbox.control.state()["allowlists"]["s1"]
    assert allowlist["version"] == 2
    assert [e["token"] for e in allowlist["entries"]] == ["tok-b"]
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {Status.DELIVERED}


def test_enqueue_validates_operation_and_payload(sandbox_partner):
    with transaction.atomic():
        with pytest.raises(ValueError, match="unknown outbox operation"):
            outbox_enqueue(partner_id=sandbox_partner.pk, operation="nope", ordering_key="k", payload={})
        with pytest.raises(ValueError, match="lacks subject"):
            outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete", ordering_key="k", payload={})
        with pytest.raises(ValueError, match="idempotency_key"):
            outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_delete", ordering_key="k",
                           payload={"subject": "s"}, idempotency_key="has spaces")
    assert OutboxMessage.objects.count() == 0


# --- reconciliation: the audit app reads the partner's log through our fetcher -----------------


def test_partner_log_fetcher_feeds_a_clean_reconciliation(sandbox_partner, clean_sandbox, settings):
    from audit.reconcile import audit_reconcile, partner_entries_from_dicts, partner_log_fetcher
    from partners.client import PartnerRejected, delete_face, open_device, partner_connection_for

    settings.PARTNER_RETRIES = 1
    clean_sandbox.control.put_device("gate-1")
    since = timezone.now() - datetime.timedelta(seconds=5)
    conn = partner_connection_for(sandbox_partner)
    open_device(conn, device_ref="gate-1", subject="sub_r", request_id="rec-open-1")
    with pytest.raises(PartnerRejected):
        open_device(conn, device_ref="no-such-gate", subject="sub_r", request_id="rec-open-404")
    clean_sandbox.control.set_faults(fail_next=1, error_status=503)
    delete_face(conn, subject="sub_r", idempotency_key="rec-delete-1")  # retried once, logged once
    until = timezone.now() + datetime.timedelta(seconds=5)

    fetcher = partner_log_fetcher()  # settings.AUDIT_PARTNER_LOG_FETCHER points at ours
    assert fetcher.partners() == [sandbox_partner.pk]
    entries = fetcher.fetch(partner_id=sandbox_partner.pk, url=None, since=since, until=until)
    assert [e["request_id"] for e in entries] == ["rec-open-1", "rec-open-404", "rec-delete-1"]
    report = audit_reconcile(partner_entries=partner_entries_from_dicts(entries), partner_id=sandbox_partner.pk,
                             since=since, until=until)
    assert report.clean, report.summary()
