"""The partner-log fetcher the audit app's reconciliation uses (setting AUDIT_PARTNER_LOG_FETCHER).

`partner_log_fetcher.fetch(partner_id=, url=, since=, until=)` reads the partner's
``GET /v1/audit`` over the same pinned mTLS session as every other call, and
`partner_log_fetcher.partners()` lists the partners it can read from.
"""

from __future__ import annotations

import datetime

from partners.client.connection import partner_connection_for
from partners.client.operations import fetch_audit_log
from partners.models import Partner


class PartnerLogFetcher:
    def partners(self) -> list[int]:
        """Usable partners with current credentials (each has the /v1/audit endpoint)."""
        return list(
            Partner.objects.usable().filter(credentials__revoked_at__isnull=True).values_list("pk", flat=True)
        )

    def fetch(
        self,
        *,
        partner_id: int | None,
        url: str | None,
        since: datetime.datetime,
        until: datetime.datetime,
    ) -> list[dict]:
        """The partner's entries with ``since <= at < until``. `url` overrides the partner's
        audit-log address; without `partner_id` it must belong to exactly one partner."""
        partner = self._partner(partner_id, url)
        conn = partner_connection_for(partner)
        entries = fetch_audit_log(conn, since=since, url=url or partner.audit_log_url or None)
        return [entry for entry in entries if _before(entry, until)]

    def _partner(self, partner_id: int | None, url: str | None):
        if partner_id is not None:
            return Partner.objects.get(pk=partner_id)
        candidates = [p for p in Partner.objects.all() if url and (
            url == p.audit_log_url or url.startswith(p.api_base_url.rstrip("/") + "/"))]
        if len(candidates) != 1:
            raise ValueError("give the partner id: the URL does not identify exactly one partner")
        return candidates[0]


def _before(entry: dict, until: datetime.datetime) -> bool:
    try:
        at = datetime.datetime.fromisoformat(str(entry.get("at", "")).replace("Z", "+00:00"))
    except ValueError:
        return True  # let reconciliation see (and report) what it cannot place
    return at < until


partner_log_fetcher = PartnerLogFetcher()
