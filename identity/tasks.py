"""Celery tasks of the identity app: thin wrappers of its services."""

from celery import shared_task

from identity import signin_audit
from identity.channels import DeliveryFailed
from identity.services import invitations


@shared_task(bind=True, max_retries=5, default_retry_delay=60)
def invitation_deliver(self, invitation_id: int) -> bool:
    """Send one invitation or reset link; retried when the channel refuses it."""
    try:
        return invitations.invitation_deliver(invitation_id=invitation_id)
    except DeliveryFailed as exc:
        raise self.retry(exc=exc) from exc


@shared_task
def signin_floods_flush() -> int:
    """Turn counted sign-in failure floods of finished minutes into summary audit events."""
    return signin_audit.signin_floods_flush()
