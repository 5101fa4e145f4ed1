"""The transactional outbox: changes that must reach a partner, delivered reliably.

- `outbox_enqueue` writes the message in the CALLER's transaction (a rollback leaves nothing)
  and, after commit, sends the Celery task that delivers it.
- `outbox_deliver` delivers one message - and, with OUTBOX_DELIVERY_BATCH above 1, the partner's
  next due messages in the same transaction: row lock (`SELECT ... FOR UPDATE SKIP LOCKED`), in
  order per (partner, ordering_key), at least once with the message's Idempotency-Key,
  exponential backoff with jitter up to OUTBOX_BACKOFF_MAX_S, dead-lettered after
  OUTBOX_MAX_ATTEMPTS (or at once when the partner refuses it with a 4xx).
- `outbox_dispatch` (beat) re-sends the task for every due message whose task was lost or
  whose worker died, so a lost broker message or a dead worker loses nothing.
- `outbox_retry_now` puts a dead-lettered (or waiting) message back in line (admin action).

While a partner's circuit breaker is open nothing is sent to it, and only one message probes:
the first one deferred by the open breaker comes back when the breaker lets a probe through (a
task sent with that countdown), and the dispatcher sends at most one message of such a partner
(in case that task was lost). When the breaker closes again - a probe got through, from here or
from any other caller - `outbox_partner_recovered` sends at once everything that waited for it,
the backoff of messages that failed before the breaker opened included.
"""

from __future__ import annotations

import logging
import math
import random
import re
import uuid
from datetime import timedelta

import pybreaker
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Exists, Min, OuterRef
from django.utils import timezone

from audit.actions import Action, Outcome
from audit.actors import actor_fields
from audit.services import record
from core.cache.shared import OUTAGE_ERRORS
from core.http.request_context import caused_by, current_origin_request_id
from partners.client import (
    CircuitOpen,
    PartnerAuthError,
    PartnerError,
    PartnerRejected,
    RateLimited,
    metrics,
    partner_connection_for,
)
from partners.client.breaker import shared_states
from partners.models import OutboxMessage
from partners.outbox.handlers import HANDLERS, PURGED_AFTER_ACK, REQUIRED_FIELDS
from partners.signals import outbox_delivered

logger = logging.getLogger(__name__)

_KEY = re.compile(r"^[A-Za-z0-9:._-]{1,64}$")
Status = OutboxMessage.Status


def outbox_enqueue(
    *, partner_id: int, operation: str, ordering_key: str, payload: dict, idempotency_key: str | None = None
) -> OutboxMessage:
    """Write a message for `operation` (a registered handler) inside the caller's transaction.

    Checks: called inside `transaction.atomic()` (RuntimeError otherwise - the whole point is
    that the message commits or rolls back with the change); the operation is registered and
    the payload has its fields; the idempotency key (default: a random one) is a short token.
    After commit, the delivery task is sent; if the broker is down, the dispatcher sends it later.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox_enqueue must be called inside the caller's transaction.atomic()")
    if operation not in HANDLERS:
        raise ValueError(f"unknown outbox operation {operation!r}")
    missing = [name for name in REQUIRED_FIELDS[operation] if name not in payload]
    if missing:
        raise ValueError(f"{operation} payload lacks {', '.join(missing)}")
    key = idempotency_key or uuid.uuid4().hex
    if not _KEY.match(key):
        raise ValueError("idempotency_key must be 1-64 characters of [A-Za-z0-9:._-]")
    if not ordering_key or len(ordering_key) > 128:
        raise ValueError("ordering_key must be 1-128 characters")
    now = timezone.now()
    message = OutboxMessage.objects.create(
        partner_id=partner_id, operation=operation, ordering_key=ordering_key, payload=payload,
        idempotency_key=key, next_attempt_at=now, created_at=now, dispatched_at=now,
        origin_request_id=current_origin_request_id(),
    )
    transaction.on_commit(lambda: _dispatch(message.pk))
    return message


def outbox_deliver(*, message_id: int) -> str:
    """Try to deliver one message, then more of its partner's; returns what happened to the first (a
    code, for logs and tests):

    ``delivered``; ``retry`` (failed, rescheduled with backoff) / ``dead`` (dead-lettered);
    ``deferred`` (breaker open: rescheduled without counting an attempt); ``busy`` (another
    worker holds it, or it is no longer pending); ``not_due``; ``blocked`` (an older message
    with the same ordering key is still pending - it will dispatch this one when delivered).

    Holds the row lock while calling the partner, so no two workers deliver a message at once.
    Records the partner call's own audit event and `outbox.delivered` / `outbox.dead_lettered`;
    sends `outbox_delivered` inside the same transaction.

    A batch: once the first is delivered, the partner's other due messages follow in the same
    transaction over the same connection, oldest first, each the head of its ordering key (a message
    delivered earlier in the batch lets its successor follow it), each locked `SKIP LOCKED` (what
    another worker holds is left to it), up to OUTBOX_DELIVERY_BATCH messages. The batch stops at the first
    that is not delivered (its failure, deferral or dead-lettering is kept, as alone); an unexpected
    error in one of the following messages undoes only that message's work (a savepoint) and stops
    the batch - the message stays pending for its own task or the dispatcher. Each message keeps its
    own events, signal and successor dispatch; the batch commits once.
    """
    with transaction.atomic():
        message = (
            OutboxMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("partner")
            .annotate(behind=_behind())
            .filter(pk=message_id, status=Status.PENDING)
            .first()
        )
        if message is None:
            return "busy"
        now = timezone.now()
        if message.next_attempt_at > now:
            return "not_due"
        if message.behind:
            return "blocked"
        outcome, conn = _attempt(message, None, now)
        if outcome == "delivered" and settings.OUTBOX_DELIVERY_BATCH > 1:
            _deliver_following(message.partner, conn)
    return outcome


def _attempt(message: OutboxMessage, conn, now) -> tuple[str, object]:
    """Call the partner for `message` (over `conn`, or a connection made now) and keep the outcome.
    Returns (outcome, the connection or None)."""
    message.last_attempt_at = now
    try:
        conn = conn or partner_connection_for(message.partner)
        with caused_by(message.origin_request_id):  # the partner call's event names the request that caused it
            result = HANDLERS[message.operation](conn, message)
    except CircuitOpen as error:
        _deferred(message, error.reason, error.retry_after_s, now)
        return "deferred", conn
    except (PartnerError, LookupError, PermissionError) as error:
        return _failed(message, error, now), conn
    _delivered(message, result, timezone.now())
    return "delivered", conn


def _deliver_following(partner, conn) -> None:
    """The rest of a batch (see outbox_deliver), inside its transaction: the partner's due messages,
    oldest first, each taken only if it is the head of its ordering key and no other worker holds
    it. Looked up by id one at a time (each lock a primary-key lookup), so the cost stays linear
    whatever the planner knows of a suddenly grown backlog."""
    candidates = list(
        OutboxMessage.objects.filter(partner_id=partner.pk, status=Status.PENDING, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[: settings.OUTBOX_DELIVERY_BATCH * 2]
    )
    delivered = 1
    for candidate in candidates:
        if delivered >= settings.OUTBOX_DELIVERY_BATCH:
            return
        following = (
            OutboxMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=candidate, status=Status.PENDING)
            .exclude(_behind())
            .first()
        )
        if following is None:  # delivered meanwhile, held by another worker, or not its turn
            continue
        following.partner = partner
        try:
            with transaction.atomic():
                outcome, conn = _attempt(following, conn, timezone.now())
        except Exception:  # undone with its savepoint; the delivered ones before it stay delivered
            logger.exception("outbox batch stopped by an error", extra={"outbox_id": following.pk})
            return
        if outcome != "delivered":
            return
        delivered += 1


def _deferred(message: OutboxMessage, reason: str, wait_s: float, now) -> None:
    """Nothing was sent: not an attempt. The message comes back when the breaker may let a probe
    through; the partner's first message to get here is sent again then (it will be the probe:
    a cache lock per partner for that long), the others wait for the breaker to close."""
    message.last_error = reason
    message.next_attempt_at = now + timedelta(seconds=wait_s)
    probe = cache.add(f"partners:outbox-probe:{message.partner_id}", message.pk, timeout=max(1, math.ceil(wait_s)))
    message.dispatched_at = now if probe else None
    message.save(update_fields=["last_error", "next_attempt_at", "dispatched_at", "last_attempt_at"])
    if probe:
        message_id = message.pk
        transaction.on_commit(lambda: _dispatch(message_id, countdown=wait_s))


def _failed(message: OutboxMessage, error: Exception, now) -> str:
    message.attempts += 1
    message.last_error = getattr(error, "reason", None) or ("partner_unusable" if isinstance(
        error, PermissionError) else "no_credentials")
    message.last_http_status = getattr(error, "http_status", None)
    permanent = isinstance(error, PartnerRejected) and not isinstance(error, PartnerAuthError)
    if permanent or message.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        message.status = Status.DEAD
        message.dead_lettered_at = now
        message.dispatched_at = None
        message.save()
        metrics.outbox_dead_lettered_total.labels(operation=message.operation).inc()
        record(
            action=Action.OUTBOX_DEAD_LETTERED, outcome=Outcome.FAILURE, partner_id=message.partner_id,
            object_type="outbox_message", object_ref=f"outbox:{message.pk}", reason=message.last_error,
            request_id=message.idempotency_key, http_status=message.last_http_status,
        )
        logger.error("outbox message dead-lettered", extra={"outbox_id": message.pk, "reason": message.last_error})
        return "dead"
    delay = backoff_s(message.attempts)
    if isinstance(error, RateLimited):
        delay = max(delay, error.retry_after_s)
    message.next_attempt_at = now + timedelta(seconds=delay)
    message.dispatched_at = None
    message.save()
    return "retry"


def _delivered(message: OutboxMessage, result: dict, acked_at) -> None:
    message.status = Status.DELIVERED
    message.delivered_at = acked_at
    message.result = result
    message.last_error = ""
    message.dispatched_at = None
    purged = [name for name in PURGED_AFTER_ACK.get(message.operation, ()) if name in message.payload]
    for name in purged:
        message.payload[name] = ""
    message.save(update_fields=["status", "delivered_at", "result", "last_error", "dispatched_at", "last_attempt_at",
                                *(["payload"] if purged else [])])
    record(
        action=Action.OUTBOX_DELIVERED, outcome=Outcome.SUCCESS, partner_id=message.partner_id,
        object_type="outbox_message", object_ref=f"outbox:{message.pk}", reason=message.operation,
        request_id=message.idempotency_key, origin_request_id=message.origin_request_id,
    )
    metrics.outbox_delivered_total.labels(operation=message.operation).inc()
    outbox_delivered.send(
        sender=OutboxMessage, message_id=message.pk, operation=message.operation, partner_id=message.partner_id,
        ordering_key=message.ordering_key, idempotency_key=message.idempotency_key, result=dict(result),
    )
    successor = _successor(message)
    if successor is not None:
        transaction.on_commit(lambda: _dispatch(successor))


def backoff_s(attempts: int) -> float:
    """Exponential with a cap, jittered to 50-100 % so retries of many messages spread out."""
    ceiling = min(settings.OUTBOX_BACKOFF_MAX_S, settings.OUTBOX_BACKOFF_BASE_S * 2 ** (attempts - 1))
    return ceiling * random.uniform(0.5, 1.0)


def _pending_predecessors(partner_id, ordering_key, pk):
    # Dead-lettered predecessors do not block: they wait for a human, and what follows them
    # (a deletion after a failed enrolment) must not wait with them.
    return OutboxMessage.objects.filter(
        partner_id=partner_id, ordering_key=ordering_key, status=Status.PENDING, pk__lt=pk
    )


def _behind() -> Exists:
    """Whether the outer message has an older pending one with its ordering key (not its turn yet)."""
    return Exists(_pending_predecessors(OuterRef("partner_id"), OuterRef("ordering_key"), OuterRef("pk")))


def _successor(message: OutboxMessage) -> int | None:
    return (
        OutboxMessage.objects.filter(
            partner_id=message.partner_id, ordering_key=message.ordering_key, status=Status.PENDING,
            pk__gt=message.pk,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )


def _dispatch(message_id: int, *, countdown: float | None = None) -> None:
    """Send the delivery task (after `countdown` seconds); a broker failure is logged, the
    dispatcher will resend it."""
    from partners.tasks import deliver_outbox_message  # lazy: partners.tasks imports this module

    try:
        deliver_outbox_message.apply_async((message_id,), countdown=countdown)
    except Exception:  # the broker is down: the beat dispatcher picks the message up later
        logger.warning("could not send outbox delivery task", extra={"outbox_id": message_id}, exc_info=True)


def outbox_dispatch(*, limit: int | None = None) -> int:
    """Send delivery tasks for due messages that have no task in flight.

    Only the head of each ordering key is sent (the others would be `blocked`), and only one
    message of a partner whose circuit breaker is not closed (the probe; the rest would be
    deferred). A message counts as in flight for OUTBOX_REDISPATCH_AFTER_S after its task was
    sent; after that the task is presumed lost (broker restart, killed worker) and sent again.
    Returns the count sent.
    """
    now = timezone.now()
    lease_start = now - timedelta(seconds=settings.OUTBOX_REDISPATCH_AFTER_S)
    due = (
        OutboxMessage.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        .exclude(dispatched_at__gt=lease_start)
        .exclude(_behind())
        .order_by("next_attempt_at", "pk")
    )
    rows = list(due.values_list("pk", "partner_id")[: limit or settings.OUTBOX_DISPATCH_BATCH])
    breaker_not_closed = _breaker_not_closed({partner_id for _, partner_id in rows})
    ids, probing = [], set()
    for message_id, partner_id in rows:
        if partner_id in breaker_not_closed:
            if partner_id in probing:
                continue
            probing.add(partner_id)
        ids.append(message_id)
    if ids:
        OutboxMessage.objects.filter(pk__in=ids).update(dispatched_at=now)
        for message_id in ids:
            _dispatch(message_id)
    return len(ids)


def _breaker_not_closed(partner_ids: set[int]) -> set[int]:
    """The partners whose circuit breaker is open or half-open, as every process sees it (none
    when the shared state cannot be read: then everything due is sent, as before breakers)."""
    if not partner_ids:
        return set()
    try:
        states = shared_states(sorted(partner_ids))
    except OUTAGE_ERRORS:
        return set()
    return {partner_id for partner_id, state in states.items() if state != pybreaker.STATE_CLOSED}


def outbox_partner_recovered(*, partner_id: int) -> int:
    """The partner's circuit breaker closed again: make its pending messages that wait (deferred
    by the open breaker, or backing off after failures while it was going down) due now, and send
    what may go. Attempts are kept; messages already in flight are left alone. Safe to repeat
    (every process that sees the breaker close may ask). Returns the count sent."""
    OutboxMessage.objects.filter(partner_id=partner_id, status=Status.PENDING,
                                 next_attempt_at__gt=timezone.now()).update(next_attempt_at=timezone.now())
    return outbox_dispatch()


def outbox_backlog() -> dict:
    """{backlog: pending messages, oldest_age_s: age of the oldest of them (0 when none)}, one query;
    /metrics reports them at scrape time (partners/metrics.py)."""
    stats = OutboxMessage.objects.filter(status=Status.PENDING).aggregate(backlog=Count("pk"), oldest=Min("created_at"))
    age = (timezone.now() - stats["oldest"]).total_seconds() if stats["oldest"] else 0.0
    return {"backlog": stats["backlog"], "oldest_age_s": age}


def outbox_bring_forward(*, partner_id: int) -> int:
    """Make every pending message of the partner due now and send what may go (the head of each
    ordering key). For when what they failed for is fixed - the partner's link or credentials set
    up - so they need not wait out their backoff. Attempts are kept; returns the count sent."""
    OutboxMessage.objects.filter(partner_id=partner_id, status=Status.PENDING).update(
        next_attempt_at=timezone.now(), dispatched_at=None
    )
    return outbox_dispatch()


CANCELLED_REASON = "consent_revoked"


def retry_refusal(message: OutboxMessage) -> str:
    """Why `message` must not be retried ("" if it may): it was delivered, or it is a face_put
    cancelled on consent revocation (its photo was emptied: sending it would upload nothing, or,
    worse, a photo of a subject without consent)."""
    if message.status == Status.DELIVERED:
        return "a delivered message cannot be retried"
    if message.operation == "face_put" and (message.last_error == CANCELLED_REASON or not message.payload.get("jwe")):
        return "a face upload cancelled because its consent was revoked cannot be retried"
    return ""


@transaction.atomic
def outbox_retry_now(*, message: OutboxMessage, actor=None) -> OutboxMessage:
    """Put a dead-lettered or waiting message back in line now, with a fresh attempt budget.

    Delivered messages are left alone (ValueError), and so is a face_put cancelled because its
    consent was revoked (ValueError; see `retry_refusal`). Records admin.change; the delivery
    task is sent after commit. The idempotency key is kept, so the partner still deduplicates.
    """
    locked = OutboxMessage.objects.select_for_update().get(pk=message.pk)
    refusal = retry_refusal(locked)
    if refusal:
        raise ValueError(refusal)
    now = timezone.now()
    locked.status = Status.PENDING
    locked.attempts = 0
    locked.next_attempt_at = now
    locked.dead_lettered_at = None
    locked.dispatched_at = now
    locked.save()
    record(
        action=Action.ADMIN_CHANGE, outcome=Outcome.SUCCESS, **actor_fields(actor), partner_id=locked.partner_id,
        object_type="outbox_message", object_ref=f"outbox:{locked.pk}", reason="outbox_retry_now",
    )
    transaction.on_commit(lambda: _dispatch(locked.pk))
    return locked
