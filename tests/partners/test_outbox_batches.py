"""A delivery task delivers a batch of its partner's due messages in one transaction (OUTBOX_DELIVERY_BATCH = 20),
against the real sandbox partner (HTTPS + mTLS), real PostgreSQL and Redis.

Each message is written here with its delivery task not yet run (`tasks_not_yet_run`: the broker
holds them), so one call of `outbox_deliver` shows what one task does. Transactional tests:
commits, row locks and on_commit hooks are the real ones.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from partners.models import OutboxMessage
from partners.outbox import services
from partners.outbox.services import outbox_deliver, outbox_dispatch, outbox_enqueue
from tests.partners import outbox_fixtures

client_settings = outbox_fixtures.client_settings
sandbox_partner = outbox_fixtures.sandbox_partner

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

Status = OutboxMessage.Status


@pytest.fixture(autouse=True)
def batches(settings):
    settings.OUTBOX_DELIVERY_BATCH = 20


@pytest.fixture
def tasks_not_yet_run(monkeypatch):
    """Delivery tasks are sent but not run yet (a broker holding them): `sent` lists their message ids."""
    sent = []
    monkeypatch.setattr(services, "_dispatch", lambda message_id, countdown=None: sent.append(message_id))
    return sent


def write(partner, *keys: str, prefix: str = "m") -> list[OutboxMessage]:
    """One face_delete per ordering key, in this order, each committed on its own."""
    messages = []
    for n, key in enumerate(keys):
        with transaction.atomic():
            messages.append(outbox_enqueue(partner_id=partner.pk, operation="face_delete",
                                           ordering_key=f"subject:{key}", payload={"subject": f"sub_{key}"},
                                           idempotency_key=f"{prefix}-{n}"))
    return messages


def delivered_in_order(sandbox) -> list[str]:
    return [entry["request_id"] for entry in sandbox.control.log()["entries"]]


def statuses(messages) -> list[str]:
    return [OutboxMessage.objects.get(pk=message.pk).status for message in messages]


def test_one_task_delivers_its_partners_due_messages_oldest_first(sandbox_partner, clean_sandbox, tasks_not_yet_run):
    messages = write(sandbox_partner, "a", "b", "c", "d", "e")
    assert outbox_deliver(message_id=messages[0].pk) == "delivered"
    assert statuses(messages) == [Status.DELIVERED] * 5
    assert delivered_in_order(clean_sandbox) == [f"m-{n}" for n in range(5)]
    for message in messages:  # every message keeps its own events
        assert AuditEvent.objects.filter(action=Action.OUTBOX_DELIVERED, object_ref=f"outbox:{message.pk}").count() == 1
        assert AuditEvent.objects.filter(action=Action.PARTNER_FACE_DELETE, outcome=Outcome.SUCCESS,
                                         request_id=message.idempotency_key).count() == 1
    # the held tasks now run: nothing is sent twice
    assert [outbox_deliver(message_id=message.pk) for message in messages[1:]] == ["busy"] * 4
    assert len(delivered_in_order(clean_sandbox)) == 5


def test_the_batch_size_is_bounded(sandbox_partner, clean_sandbox, tasks_not_yet_run, settings):
    settings.OUTBOX_DELIVERY_BATCH = 2
    messages = write(sandbox_partner, "a", "b", "c")
    assert outbox_deliver(message_id=messages[0].pk) == "delivered"
    assert statuses(messages) == [Status.DELIVERED, Status.DELIVERED, Status.PENDING]
    settings.OUTBOX_DELIVERY_BATCH = 1
    more = write(sandbox_partner, "x", "y", prefix="n")
    assert outbox_deliver(message_id=more[0].pk) == "delivered"
    assert statuses(more) == [Status.DELIVERED, Status.PENDING]


def test_a_batch_keeps_each_ordering_key_in_order(sandbox_partner, clean_sandbox, tasks_not_yet_run):
    messages = write(sandbox_partner, "a", "b", "a", "c", "a")  # a: m-0, m-2, m-4
    assert outbox_deliver(message_id=messages[1].pk) == "delivered"  # b's task: a's head is older
    assert delivered_in_order(clean_sandbox) == ["m-1", "m-0", "m-2", "m-3", "m-4"]
    assert statuses(messages) == [Status.DELIVERED] * 5


def test_a_batch_skips_what_another_worker_holds_and_what_waits_behind_it(sandbox_partner, clean_sandbox,
                                                                          tasks_not_yet_run):
    head, behind, other = write(sandbox_partner, "a", "a", "b")
    locked, release, done = threading.Event(), threading.Event(), threading.Event()

    def another_worker():
        try:
            with transaction.atomic():
                OutboxMessage.objects.select_for_update().get(pk=head.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=another_worker)
    thread.start()
    try:
        assert locked.wait(10)
        assert outbox_deliver(message_id=other.pk) == "delivered"
        assert statuses([head, behind, other]) == [Status.PENDING, Status.PENDING, Status.DELIVERED]
    finally:
        release.set()
        assert done.wait(10)
        thread.join()
    assert delivered_in_order(clean_sandbox) == ["m-2"]
    assert outbox_deliver(message_id=head.pk) == "delivered"
    assert delivered_in_order(clean_sandbox) == ["m-2", "m-0", "m-1"]


def test_a_partner_refusal_inside_a_batch_stops_it_and_keeps_what_was_delivered(sandbox_partner, clean_sandbox,
                                                                                tasks_not_yet_run):
    first, second = write(sandbox_partner, "a", "b")
    with transaction.atomic():  # refused by the partner (not a JWE): dead-lettered at once
        refused = outbox_enqueue(partner_id=sandbox_partner.pk, operation="face_put", ordering_key="subject:c",
                                 payload={"subject": "sub_c", "jwe": "not-a-jwe", "consent_ref": "consent:1",
                                          "retention_until": "2030-01-01T00:00:00Z"}, idempotency_key="m-2")
    (last,) = write(sandbox_partner, "d", prefix="later")
    assert outbox_deliver(message_id=first.pk) == "delivered"
    assert statuses([first, second, refused, last]) == [Status.DELIVERED, Status.DELIVERED, Status.DEAD,
                                                        Status.PENDING]
    assert AuditEvent.objects.filter(action=Action.OUTBOX_DEAD_LETTERED, object_ref=f"outbox:{refused.pk}").count() == 1
    assert outbox_deliver(message_id=last.pk) == "delivered"  # its own task: nothing lost
    assert statuses([last]) == [Status.DELIVERED]


def test_an_error_inside_a_batch_undoes_only_that_message(sandbox_partner, clean_sandbox, tasks_not_yet_run,
                                                          monkeypatch, settings):
    messages = write(sandbox_partner, "a", "b", "c", "d")
    real_delivered = services._delivered

    def fails_on_the_third(message, result, acked_at):
        real_delivered(message, result, acked_at)
        if message.pk == messages[2].pk:
            raise RuntimeError("a bug after the partner's ack")

    monkeypatch.setattr(services, "_delivered", fails_on_the_third)
    assert outbox_deliver(message_id=messages[0].pk) == "delivered"
    assert statuses(messages) == [Status.DELIVERED, Status.DELIVERED, Status.PENDING, Status.PENDING]
    assert not AuditEvent.objects.filter(action=Action.OUTBOX_DELIVERED, object_ref=f"outbox:{messages[2].pk}")
    assert OutboxMessage.objects.get(pk=messages[2].pk).attempts == 0
    monkeypatch.setattr(services, "_delivered", real_delivered)
    settings.OUTBOX_REDISPATCH_AFTER_S = 0  # its task presumed lost: the dispatcher sends it again
    monkeypatch.setattr(services, "_dispatch", lambda message_id, countdown=None: outbox_deliver(message_id=message_id))
    assert outbox_dispatch() >= 1
    assert statuses(messages) == [Status.DELIVERED] * 4
    # the partner got the third twice, with one idempotency key: it kept it once and said so
    assert delivered_in_order(clean_sandbox) == ["m-0", "m-1", "m-2", "m-3"]
    assert OutboxMessage.objects.get(pk=messages[2].pk).result["replayed"] is True
    assert OutboxMessage.objects.get(pk=messages[3].pk).result["replayed"] is False
