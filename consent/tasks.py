"""Celery tasks of the consent app (thin: they call services)."""

from celery import shared_task

from consent.services import consent_expire_due


@shared_task(ignore_result=True)
def expire_due_consents() -> int:
    return consent_expire_due()
