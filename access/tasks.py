"""Celery tasks of the access app (thin: they call services)."""

from celery import shared_task


@shared_task(ignore_result=True)
def allowlist_push_nightly() -> int:
    """The full allowlist of every partner and site, through the outbox (beat: nightly)."""
    from access.services.allowlist import allowlist_push_all

    return allowlist_push_all()


@shared_task(ignore_result=True)
def move_outs_due_daily() -> int:
    """Move-outs dated in the future reach their day: revoke the building's face consents (beat: hourly)."""
    from access.services.move_outs import move_outs_due

    return move_outs_due()
