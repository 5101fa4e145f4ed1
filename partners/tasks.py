"""Celery tasks of the partners app: thin wrappers around its services (idempotent)."""

from celery import shared_task

from partners.outbox.services import outbox_deliver, outbox_dispatch
from partners.outbox.services import outbox_partner_recovered as partner_recovered
from partners.services import plate_keys_retire_expired


@shared_task(acks_late=True, ignore_result=True)
def deliver_outbox_message(message_id: int) -> str:
    """Deliver one outbox message (safe to run twice: the row lock and its status decide)."""
    return outbox_deliver(message_id=message_id)


@shared_task(ignore_result=True)
def outbox_dispatch_due() -> int:
    """Beat: send delivery tasks for due messages whose task was lost; refresh backlog metrics."""
    return outbox_dispatch()


@shared_task(ignore_result=True)
def plate_keys_retire_overlap_ended() -> int:
    """Beat: retire previous plate-token keys whose overlap (PLATE_TOKEN_KEY_OVERLAP_S) has ended."""
    return plate_keys_retire_expired()


@shared_task(ignore_result=True)
def outbox_partner_recovered(partner_id: int) -> int:
    """A partner's circuit breaker closed again: send what waited for it."""
    return partner_recovered(partner_id=partner_id)
