"""What operators watch about the partners, beyond the call metrics (registered by PartnersConfig.ready):

- `partner_reachability`: /readyz's `partner` block - each usable partner "reachable" (it
  completed a TLS handshake with our client certificate against its pinned CA and answered an
  unauthenticated `GET /v1/` with a status below 500 - a 401, 404 or 429 is the partner
  answering), "unreachable", or "breaker_open" (our breaker refuses calls to it now,
  so it is not probed). All partners are asked at once; one that has not answered within
  READYZ_PARTNER_TIMEOUT_S is unreachable.
  Information only: a barrier decision never needs the partner.
- `partner_certificates`: the certificates of `core.observability.certificates` that partners
  depend on - our client certificate (PARTNER_CLIENT_CERT_FILE), each partner's pinned server
  CA (or PARTNER_SERVER_CA_FILE), and each partner's pinned client certificate.
- `DeadLetterCollector`: `smarthome_outbox_dead_letters`, dead-lettered outbox messages an
  operator may still retry (a face upload cancelled by a consent revocation is not one), counted
  in the database at scrape time so it is the same whichever process is scraped.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, wait

import pybreaker
import requests
from django.conf import settings
from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily

from core.observability.certificates import WatchedCertificate, read_pem_file
from partners.client.breaker import breaker_for
from partners.client.connection import PartnerConnection, partner_connection_for, session_for
from partners.models import OutboxMessage, Partner
from partners.outbox.services import CANCELLED_REASON
from partners.selectors import current_credentials

logger = logging.getLogger(__name__)

REACHABLE, UNREACHABLE, BREAKER_OPEN = "reachable", "unreachable", "breaker_open"


def _probe(conn: PartnerConnection, timeout_s: float) -> str:
    try:
        response = session_for(conn).get(conn.url("/v1/"), timeout=(timeout_s, timeout_s), allow_redirects=False)
    except (requests.RequestException, OSError, ValueError):
        return UNREACHABLE
    response.close()
    return REACHABLE if response.status_code < 500 else UNREACHABLE


def _breaker_open(conn: PartnerConnection) -> bool:
    try:
        return breaker_for(conn).current_state == pybreaker.STATE_OPEN
    except Exception:  # the shared store (Redis) is down: /readyz reports that itself; probe anyway
        return False


def partner_reachability() -> dict[str, str]:
    """{partner slug: reachable | unreachable | breaker_open} for every usable partner with credentials."""
    timeout_s = settings.READYZ_PARTNER_TIMEOUT_S
    status: dict[str, str] = {}
    to_probe: list[PartnerConnection] = []
    for partner in Partner.objects.usable().order_by("slug"):
        try:
            conn = partner_connection_for(partner, connect_timeout_s=timeout_s)
        except (LookupError, PermissionError):
            continue
        if _breaker_open(conn):
            status[conn.slug] = BREAKER_OPEN
        else:
            status[conn.slug] = UNREACHABLE  # until its probe says otherwise, in time
            to_probe.append(conn)
    if to_probe:
        executor = ThreadPoolExecutor(max_workers=len(to_probe), thread_name_prefix="readyz-partner")
        futures = {executor.submit(_probe, conn, timeout_s): conn.slug for conn in to_probe}
        done, _ = wait(futures, timeout=timeout_s)
        executor.shutdown(wait=False)  # a late probe ends by its own socket timeouts
        for future in done:
            status[futures[future]] = future.result()
    return status


def partner_certificates():
    yield WatchedCertificate("partner_client", read_pem_file(settings.PARTNER_CLIENT_CERT_FILE))
    for partner in Partner.objects.usable().order_by("slug"):
        ca = partner.server_ca_pem.encode() if partner.server_ca_pem else read_pem_file(settings.PARTNER_SERVER_CA_FILE)
        yield WatchedCertificate("partner_server_ca", ca, partner=partner.slug, bundle=True)
        credentials = current_credentials(partner=partner)
        if credentials is not None and credentials.client_cert_pem:
            yield WatchedCertificate("partner_pinned_client", credentials.client_cert_pem.encode(),
                                     partner=partner.slug)


DEAD_LETTERS = ("smarthome_outbox_dead_letters",
                "Dead-lettered outbox messages that may still be retried (database, at scrape time)")


class DeadLetterCollector:
    def describe(self):
        return [GaugeMetricFamily(*DEAD_LETTERS)]

    def collect(self):
        dead = OutboxMessage.objects.filter(status=OutboxMessage.Status.DEAD).exclude(last_error=CANCELLED_REASON)
        try:
            count = dead.count()
        except DatabaseError:  # the database is down: readiness says so; leave the gauge out
            return
        yield GaugeMetricFamily(*DEAD_LETTERS, value=count)
