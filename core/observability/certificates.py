"""When the TLS certificates the service depends on expire, as a gauge computed at each scrape:

    smarthome_certificate_not_after_timestamp_seconds{certificate, partner}

Apps say which certificates they depend on with `register_certificate_source` (a function
yielding `WatchedCertificate`s, read at scrape time so a replaced file or a rotated partner CA
shows at once); the kernel watches the public server certificate (TLS_SERVER_CERT_FILE).

A file holding a chain counts as expiring with its first-expiring certificate (every one of
them is presented); a CA bundle counts with its last-expiring one (any one of them suffices,
so an old CA next to its successor does not alarm). A certificate that is configured but cannot
be read or parsed reports 0 (1970): the expiry alert then fires at once, which is what a missing
certificate deserves. A source that fails as a whole (its database is down) is left out of that
scrape, the others still reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from django.conf import settings
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

NOT_AFTER = (
    "smarthome_certificate_not_after_timestamp_seconds",
    "When a certificate the service depends on expires (Unix time; 0: configured but unreadable)",
)
LABELS = ["certificate", "partner"]


@dataclass(frozen=True)
class WatchedCertificate:
    certificate: str  # what it is: "server", "partner_client", "partner_server_ca", ...
    pem: bytes | None  # None: configured but unreadable
    partner: str = ""  # the partner's slug, for certificates of one partner
    bundle: bool = False  # trust anchors: the last-expiring one counts


CertificateSource = Callable[[], Iterable[WatchedCertificate]]
_sources: list[CertificateSource] = []


def register_certificate_source(source: CertificateSource) -> None:
    if source not in _sources:
        _sources.append(source)


def read_pem_file(path: str | Path) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def not_after(pem: bytes | None, *, bundle: bool = False) -> float:
    """Unix time the PEM's certificates stop being usable (see the module docstring); 0 if none parse."""
    if not pem:
        return 0.0
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return 0.0
    ends = [certificate.not_valid_after_utc.timestamp() for certificate in certificates]
    return max(ends) if bundle else min(ends)


def server_certificate() -> Iterable[WatchedCertificate]:
    if settings.TLS_SERVER_CERT_FILE:
        yield WatchedCertificate("server", read_pem_file(settings.TLS_SERVER_CERT_FILE))


class CertificateExpiryCollector:
    def describe(self):
        return [GaugeMetricFamily(*NOT_AFTER, labels=LABELS)]

    def collect(self):
        family = GaugeMetricFamily(*NOT_AFTER, labels=LABELS)
        for source in _sources:
            try:
                watched = list(source())
            except Exception as error:  # one source down (its database) must not blank the others
                logger.warning("certificate source failed", extra={"source": source.__name__,
                                                                   "error": type(error).__name__})
                continue
            for item in watched:
                family.add_metric([item.certificate, item.partner], not_after(item.pem, bundle=item.bundle))
        yield family
