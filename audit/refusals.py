"""Partner calls refused before any view ran: counted per minute, source and reason; bursts alert.

Refusals (no or unknown client certificate, address outside the partner's allowlist, missing,
invalid or unbound token, missing scope, suspended partner) are not audit events - a flood would
fill the log - but they are not invisible either: `refusal_count` adds them to one
`AuditRefusal` row per (minute, source, reason), where the source is `partner:<id>` when the
certificate named a partner and `ip:<address>` when it did not. The row's `count` grows by an
upsert (INSERT ... ON CONFLICT DO UPDATE), so a million refusals in a minute are one row.

Each process buffers its counts: the first refusal of a key in a minute is written at once,
the rest at most every FLUSH_S seconds (at the next refusal, or at exit), and at once when the
key reaches AUDIT_REFUSAL_BURST_PER_MIN. Crossing that threshold raises the alert, once per key
and minute: a `security.alert` event (reason `partner_refusal_burst`, object_ref `count:<n>`),
an error log line and `smarthome_partner_refusal_bursts_total{reason}`.
`smarthome_partner_refusals_total{reason}` counts every refusal as it happens.
"""

import atexit
import logging
import threading
import time

from django.db import connection, transaction
from django.db.models import TextChoices
from django.utils import timezone
from prometheus_client import Counter

from audit import conf
from audit.actions import Action, ActorKind, Outcome
from audit.services import record

logger = logging.getLogger(__name__)
FLUSH_S = 5.0

refusals_total = Counter("smarthome_partner_refusals_total", "Partner calls refused before any view ran", ["reason"])
bursts_total = Counter("smarthome_partner_refusal_bursts_total", "Bursts of refused partner calls", ["reason"])


class RefusalReason(TextChoices):
    NO_CERTIFICATE = "no_certificate", "no verified client certificate"
    UNKNOWN_CERTIFICATE = "unknown_certificate", "certificate of no partner"
    IP_NOT_ALLOWED = "ip_not_allowed", "address outside the partner's allowlist"
    NO_TOKEN = "no_token", "no bearer token"
    INVALID_TOKEN = "invalid_token", "unknown or expired token"
    TOKEN_OF_ANOTHER_PARTNER = "token_other_partner", "token of another partner"
    TOKEN_NOT_BOUND = "token_not_bound", "token not bound to this certificate"
    MISSING_SCOPE = "missing_scope", "token without the scope"
    PARTNER_SUSPENDED = "partner_suspended", "partner suspended"


class _Pending:
    __slots__ = ("count", "last_at", "partner_id", "source_ip", "stored")

    def __init__(self, partner_id, source_ip):
        self.count = 0
        self.partner_id = partner_id
        self.source_ip = source_ip
        self.last_at = None
        self.stored = 0  # the count in the database after our last write


_lock = threading.Lock()
_pending: dict[tuple, _Pending] = {}
_last_flush = 0.0

UPSERT = (
    "INSERT INTO audit_refusal (minute, source, reason, partner_id, source_ip, count, last_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (minute, source, reason) DO UPDATE SET count = audit_refusal.count + excluded.count, "
    "last_at = excluded.last_at, source_ip = excluded.source_ip RETURNING count"
)


def refusal_count(*, reason: str, partner_id: int | None = None, source_ip: str | None = None) -> None:
    """Count one refused partner call (see the module docstring). Never raises: a refusal must
    not turn into a server error because its counter could not be written."""
    reason = RefusalReason(reason).value
    refusals_total.labels(reason=reason).inc()
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    source = f"partner:{partner_id}" if partner_id is not None else f"ip:{source_ip or '-'}"
    key = (minute, source, reason)
    with _lock:
        entry = _pending.get(key)
        first = entry is None
        if first:
            entry = _pending[key] = _Pending(partner_id, source_ip or "")
        entry.count += 1
        entry.last_at = now
        threshold = conf.refusal_burst_per_min()
        due = (first or time.monotonic() - _last_flush >= FLUSH_S
               or entry.stored < threshold <= entry.stored + entry.count)
    if due:
        flush()


def flush() -> None:
    """Write every buffered count (and forget keys of minutes that are over)."""
    global _last_flush
    with _lock:
        work = [(key, entry, entry.count) for key, entry in _pending.items() if entry.count]
        for _key, entry, count in work:
            entry.count -= count
        _last_flush = time.monotonic()
        current = timezone.now().replace(second=0, microsecond=0)
        for key in [k for k, e in _pending.items() if k[0] < current and not e.count]:
            del _pending[key]
    threshold = conf.refusal_burst_per_min()
    for (minute, source, reason), entry, count in work:
        try:
            total = _upsert(minute, source, reason, entry, count)
        except Exception:  # the database is down: the refusal itself still stands
            logger.exception("refused partner calls could not be counted", extra={"reason": reason})
            continue
        before, entry.stored = total - count, total
        if before < threshold <= total:
            _alert(reason=reason, partner_id=entry.partner_id, source_ip=entry.source_ip, count=total)


def _upsert(minute, source, reason, entry: _Pending, count: int) -> int:
    ops = connection.ops
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(UPSERT, [ops.adapt_datetimefield_value(minute), source, reason, entry.partner_id,
                                entry.source_ip, count, ops.adapt_datetimefield_value(entry.last_at)])
        return int(cursor.fetchone()[0])


def _alert(*, reason: str, partner_id: int | None, source_ip: str, count: int) -> None:
    bursts_total.labels(reason=reason).inc()
    logger.error("burst of refused partner calls", extra={"reason": reason, "partner_id": partner_id,
                                                          "count": count})
    with transaction.atomic():
        record(action=Action.SECURITY_ALERT, outcome=Outcome.DENIED,
               actor_kind=ActorKind.PARTNER if partner_id is not None else ActorKind.SYSTEM,
               partner_id=partner_id, source_ip=source_ip or None, object_type="partner_refusal",
               object_ref=f"count:{count}", reason="partner_refusal_burst")


atexit.register(flush)
