"""Celery tasks of the access app (thin: they call services)."""

from celery import shared_task

from access.services.allowlist import allowlist_push_all
from access.services.plate_tokens import partner_scope_refresh as partner_scope_refresh_service
from access.services.residencies import move_outs_due
from access.services.retention import activity_prune


@shared_task(ignore_result=True)
def allowlist_push_nightly() -> int:
    """The full allowlist of every partner and site, through the outbox (beat: nightly)."""
    return allowlist_push_all()


@shared_task(ignore_result=True)
def move_outs_due_daily() -> int:
    """Move-outs dated in the future reach their day: revoke the building's face consents (beat: hourly)."""
    return move_outs_due()


@shared_task(ignore_result=True)
def activity_prune_daily() -> dict:
    """Residents' opens, notifications and ended guest passes past their retention (beat: daily)."""
    return activity_prune()


@shared_task(ignore_result=True)
def partner_scope_refresh(partner_id: int) -> int:
    """A partner's contracts or credentials changed: its plate tokens, then its sites' allowlists."""
    return partner_scope_refresh_service(partner_id=partner_id)
