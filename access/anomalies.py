"""Anomaly detection on partners' decision traffic, and per-partner rate limits.

Sliding-window counters in the shared cache (Redis in production), per partner and per
device: decisions, denies, and distinct unknown credentials (plate enumeration). A window of
`window_s` is split into BUCKETS buckets; a count is the sum of the buckets still inside the
window. Distinct unknown credentials are counted per bucket (a credential seen in two buckets
counts twice: an over-estimate, which errs on the side of alerting).

Thresholds: settings.ACCESS_ANOMALY (see DEFAULTS). A breach creates one SecurityAlert per
(partner, kind, scope) and window, records `security.alert`, increments the Prometheus counter
`smarthome_security_alerts_total{kind}`, logs a line, and - when its kind is listed in
`suspend_on` - suspends the partner and expires its tokens (`security.partner_suspended`)
until a security admin calls `partner_reinstate`.
"""

import hashlib
import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter

from access.models import SecurityAlert
from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from partners.authentication import partner_tokens_revoke
from partners.models import Partner
from smarthome.identifiers import user_ref
from smarthome.ratelimit import Limit, hit
from smarthome.roles import SECURITY_ADMIN, has_role

logger = logging.getLogger(__name__)

BUCKETS = 6
DEFAULTS = {
    "window_s": 60,
    "max_decisions": 3000,  # per partner per window (per device: max_decisions_per_device)
    "max_decisions_per_device": 300,
    "max_deny_ratio": 0.8,
    "min_decisions_for_ratio": 50,
    "max_unknown_credentials": 30,  # distinct unknown plate/face tokens per partner per window
    "suspend_on": ["unknown_credentials"],
}
DEFAULT_DECISION_RATE = "200/s"

security_alerts_total = Counter(
    "smarthome_security_alerts_total", "Security alerts raised by anomaly detection", ["kind"]
)


def anomaly_settings() -> dict:
    return {**DEFAULTS, **getattr(settings, "ACCESS_ANOMALY", {})}


def decision_rate_exceeded(*, partner_id: int) -> int | None:
    """Per-partner rate limit of access decisions (settings.PARTNER_DECISION_RATE, e.g. "200/s").
    None if allowed, else the seconds to wait (Retry-After). Other partners are not affected."""
    rate = getattr(settings, "PARTNER_DECISION_RATE", DEFAULT_DECISION_RATE)
    return hit(f"partner-decisions:{partner_id}", Limit.parse(rate))


def _bucket(window_s: int, now: float) -> tuple[int, int]:
    size = max(window_s // BUCKETS, 1)
    return int(now) // size, size


def _count(name: str, window_s: int, now: float, amount: bool = True) -> int:
    """Add one to the current bucket of `name` (if `amount`) and return the window's total."""
    current, size = _bucket(window_s, now)
    key = f"anomaly:{name}:{current}"
    if amount and not cache.add(key, 1, timeout=window_s + size):
        try:
            cache.incr(key)
        except ValueError:
            cache.add(key, 1, timeout=window_s + size)
    keys = [f"anomaly:{name}:{current - offset}" for offset in range(BUCKETS)]
    return sum(int(value) for value in cache.get_many(keys).values())


def _redis_client():
    """The raw redis-py client behind Django's RedisCache (None for other cache backends)."""
    backend = getattr(cache, "_cache", None)
    return backend.get_client(write=True) if hasattr(backend, "get_client") else None


def _totals(increments: dict[str, bool], window_s: int, now: float) -> dict[str, int]:
    """Add one to the current bucket of each name whose flag is true; the window total of every name.
    On Redis: one pipelined round trip (INCR + EXPIRE per bump, one MGET)."""
    client = _redis_client()
    if client is None:
        return {name: _count(name, window_s, now, amount=bump) for name, bump in increments.items()}
    current, size = _bucket(window_s, now)
    pipe = client.pipeline(transaction=False)
    for name, bump in increments.items():
        if bump:
            key = f"anomaly:{name}:{current}"
            pipe.incr(key)
            pipe.expire(key, window_s + size)
    names = list(increments)
    pipe.mget([f"anomaly:{name}:{current - offset}" for name in names for offset in range(BUCKETS)])
    values = pipe.execute()[-1]
    return {
        name: sum(int(v) for v in values[i * BUCKETS:(i + 1) * BUCKETS] if v is not None)
        for i, name in enumerate(names)
    }


def _first_seen(name: str, credential: str, window_s: int, now: float) -> bool:
    current, size = _bucket(window_s, now)
    digest = hashlib.sha256(credential.encode()).hexdigest()[:16]
    return cache.add(f"anomaly:{name}:seen:{current}:{digest}", 1, timeout=window_s + size)


def decision_observe(*, partner_id: int, device_ref: str, denied: bool, unknown_credential: str | None) -> list:
    """Count one decision; raise alerts for every threshold it crosses. Returns the new alerts."""
    config = anomaly_settings()
    window = int(config["window_s"])
    now = time.time()
    base = f"p{partner_id}"
    device = f"{base}:d:{hashlib.sha256(device_ref.encode()).hexdigest()[:16]}"
    breaches = []
    increments = {f"{base}:n": True, f"{base}:deny": denied, f"{device}:n": True}
    if unknown_credential is not None:
        increments[f"{base}:unknown"] = _first_seen(f"{base}:unknown", unknown_credential, window, now)
    totals = _totals(increments, window, now)
    total, denies, per_device = totals[f"{base}:n"], totals[f"{base}:deny"], totals[f"{device}:n"]
    if total > config["max_decisions"]:
        breaches.append((SecurityAlert.Kind.DECISION_RATE, "partner", total, config["max_decisions"]))
    if per_device > config["max_decisions_per_device"]:
        breaches.append((SecurityAlert.Kind.DECISION_RATE, f"device:{device_ref}", per_device,
                         config["max_decisions_per_device"]))
    if total >= config["min_decisions_for_ratio"] and denies / total > config["max_deny_ratio"]:
        breaches.append((SecurityAlert.Kind.DENY_RATIO, "partner", round(denies / total, 3),
                         config["max_deny_ratio"]))
    if unknown_credential is not None:
        unknown = totals[f"{base}:unknown"]
        if unknown > config["max_unknown_credentials"]:
            breaches.append((SecurityAlert.Kind.UNKNOWN_CREDENTIALS, "partner", unknown,
                             config["max_unknown_credentials"]))
    alerts = []
    for kind, scope, observed, threshold in breaches:
        # one alert per partner, kind and scope per window
        if cache.add(f"anomaly:alerted:{base}:{kind}:{scope}", 1, timeout=window):
            alerts.append(security_alert_raise(
                partner_id=partner_id, kind=kind, scope=scope, observed=observed, threshold=threshold,
                window_s=window, suspend=kind in config["suspend_on"],
            ))
    return alerts


@transaction.atomic
def security_alert_raise(*, partner_id: int, kind: str, scope: str, observed: float, threshold: float,
                         window_s: int, suspend: bool = False) -> SecurityAlert:
    """Store a SecurityAlert, record `security.alert`, count it in Prometheus and log it; with
    `suspend`, suspend the partner and expire its tokens (recorded `security.partner_suspended`)."""
    alert = SecurityAlert.objects.create(
        partner_id=partner_id, kind=kind, scope=scope[:80], observed=observed, threshold=threshold,
        window_s=window_s, partner_suspended=suspend,
    )
    record(action=Action.SECURITY_ALERT, outcome=Outcome.FAILURE, object_type="security_alert",
           object_ref=f"security_alert:{alert.pk}", partner_id=partner_id, reason=kind)
    if suspend:
        partner_suspend(partner_id=partner_id, reason=kind)
    security_alerts_total.labels(kind=kind).inc()
    logger.warning("security alert", extra={"alert_id": alert.pk, "kind": kind, "partner_id": partner_id,
                                            "observed": observed, "threshold": threshold, "suspended": suspend})
    return alert


@transaction.atomic
def partner_suspend(*, partner_id: int, reason: str, actor=None) -> Partner:
    """Suspend a partner: every call is refused and its access tokens expire now."""
    partner = Partner.objects.select_for_update().get(pk=partner_id)
    if partner.suspended_at is None:
        partner.suspended_at = timezone.now()
        partner.save(update_fields=["suspended_at"])
    partner_tokens_revoke(partner_id=partner_id)
    record(action=Action.SECURITY_PARTNER_SUSPENDED, outcome=Outcome.SUCCESS,
           actor_kind=ActorKind.STAFF if actor else ActorKind.SYSTEM, actor_ref=user_ref(actor) if actor else "",
           object_type="partner", object_ref=f"partner:{partner_id}", partner_id=partner_id, reason=reason)
    return partner


@transaction.atomic
def partner_reinstate(*, partner: Partner, actor) -> Partner:
    """A security admin lifts a suspension (the partner then fetches new tokens).

    Raises PermissionDenied unless `actor` has the security-admin role (or is a superuser)."""
    if not (actor.is_superuser or has_role(actor, SECURITY_ADMIN)):
        raise PermissionDenied("Only a security admin reinstates a partner.")
    Partner.objects.filter(pk=partner.pk).update(suspended_at=None)
    partner.suspended_at = None
    record(action=Action.SECURITY_PARTNER_REINSTATED, outcome=Outcome.SUCCESS, actor_kind=ActorKind.STAFF,
           actor_ref=user_ref(actor), object_type="partner", object_ref=f"partner:{partner.pk}",
           partner_id=partner.pk, reason="reinstated")
    return partner
