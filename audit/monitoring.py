"""Gauges of the audit log's health, computed from the database when /metrics is scraped (so they
are the same whichever process is scraped; registered by AuditConfig.ready):

- `smarthome_audit_unsealed_events`: events not yet under a signed checkpoint;
- `smarthome_audit_last_seal_timestamp_seconds`: when the latest seal (its logs' checkpoints) was
  signed (0: never).
  Together they say "sealing stalled": events wait while no seal has happened for a while;
- `smarthome_audit_verification_ok`: 1 if the latest `verify_audit` (daily beat task, or the
  command) found the log intact, 0 if it found tampering; absent before the first run;
- `smarthome_audit_last_verification_timestamp_seconds`: when that run was (0: never).

With the database down these families are left out (readiness reports the database).
"""

from django.db import DatabaseError
from prometheus_client.core import GaugeMetricFamily

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from audit.selectors import seal_latest, unsealed_count

UNSEALED = ("smarthome_audit_unsealed_events", "Audit events not yet under a signed checkpoint")
LAST_SEAL = ("smarthome_audit_last_seal_timestamp_seconds", "When the latest audit checkpoint was signed (0: never)")
VERIFIED_OK = ("smarthome_audit_verification_ok", "1 if the latest audit log verification passed, 0 if it failed")
LAST_VERIFICATION = ("smarthome_audit_last_verification_timestamp_seconds",
                     "When the audit log was last verified (0: never)")


def last_seal_timestamp() -> float:
    seal = seal_latest()
    return seal.sealed_at.timestamp() if seal else 0.0


def last_verification() -> AuditEvent | None:
    """The latest `audit.verified` event (its outcome says whether the log verified)."""
    latest = AuditEvent.objects.filter(action=Action.AUDIT_VERIFIED).order_by("-id")
    return latest.only("outcome", "occurred_at").first()


class AuditHealthCollector:
    def describe(self):
        return [GaugeMetricFamily(*UNSEALED), GaugeMetricFamily(*LAST_SEAL),
                GaugeMetricFamily(*VERIFIED_OK), GaugeMetricFamily(*LAST_VERIFICATION)]

    def collect(self):
        try:
            unsealed, sealed_at, verification = unsealed_count(), last_seal_timestamp(), last_verification()
        except DatabaseError:
            return
        yield GaugeMetricFamily(*UNSEALED, value=unsealed)
        yield GaugeMetricFamily(*LAST_SEAL, value=sealed_at)
        if verification is not None:
            yield GaugeMetricFamily(*VERIFIED_OK, value=1 if verification.outcome == Outcome.SUCCESS else 0)
        yield GaugeMetricFamily(*LAST_VERIFICATION,
                                value=verification.occurred_at.timestamp() if verification else 0.0)
