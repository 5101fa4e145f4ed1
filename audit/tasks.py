"""Periodic tasks of the audit app: thin wrappers around its services (all idempotent)."""

import datetime
import logging

from celery import shared_task
from django.utils import timezone

from audit.reconcile import FetcherNotConfigured, audit_reconcile, iter_partner_entries, partner_log_fetcher
from audit.sealing import audit_seal_pending
from audit.services import audit_verify

logger = logging.getLogger(__name__)


@shared_task
def seal() -> int:
    """Seal every committed, unsealed event (no-op while another sealer holds the lock)."""
    return audit_seal_pending()


@shared_task
def verify() -> bool:
    return audit_verify().ok


@shared_task
def reconcile_partners(days: int = 1) -> dict:
    """Reconcile yesterday (the last `days` whole UTC days) with each partner the fetcher knows.

    No-op without AUDIT_PARTNER_LOG_FETCHER. Differences raise an alert: an error log line,
    a `security.alert` audit event and the `smarthome_audit_reconcile_differences_total` counter.
    """
    try:
        fetcher = partner_log_fetcher()
    except FetcherNotConfigured:
        return {}
    until = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    since = until - datetime.timedelta(days=days)
    results = {}
    for partner_id in fetcher.partners():
        entries = iter_partner_entries(fetcher.fetch(partner_id=partner_id, url=None, since=since, until=until))
        report = audit_reconcile(partner_entries=entries, partner_id=partner_id, since=since, until=until)
        results[partner_id] = report.summary()
        if not report.clean:
            logger.error("audit log differs from the partner's", extra={"partner_id": partner_id, **report.counts})
    return results
