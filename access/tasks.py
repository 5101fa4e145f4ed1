"""Celery tasks of the access app (thin: they call services)."""

from celery import shared_task


@shared_task(ignore_result=True)
def allowlist_push_nightly() -> int:
    """The full allowlist of every partner and site, through the outbox (beat: nightly)."""
    from access.services.allowlist import allowlist_push_all

    return allowlist_push_all()
