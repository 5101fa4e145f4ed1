"""Anomaly detection on partners' decision traffic, and per-partner rate limits.

Sliding-window counters in the shared cache (Redis in production), per partner, per device
and per resident: decisions, denies, distinct unknown credentials (plate enumeration), a
resident's allowed decisions and a resident's remote opens (open bursts). A window of
`window_s` is split into BUCKETS buckets; a count is the sum of the buckets still inside the
window. Distinct unknown credentials are counted per bucket (a credential seen in two buckets
counts twice: an over-estimate, which errs on the side of alerting).

Thresholds: settings.ACCESS_ANOMALY (see DEFAULTS; every key optional). Residents appear in
alerts by pseudonymous ref only. A breach creates one SecurityAlert per
(partner, kind, scope) and window, records `security.alert`, increments the Prometheus counter
`smarthome_security_alerts_total{kind}`, logs a line, and - when its kind is listed in
`suspend_on` - suspends the partner and expires its tokens (`security.partner_suspended`)
until a security admin calls `partner_reinstate` (which also resolves the partner's alerts).
"""

import hashlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from prometheus_client import Counter

from access.models import SecurityAlert
from audit.actions import Action, Outcome
from audit.services import record
from core.cache.shared import OUTAGE_ERRORS, redis_client, shared_cache_unavailable
from core.cache.shared import count as shared_count
from core.ratelimit import Limit, hit, retry_after
from core.ratelimit import window as rate_window
from core.security.identifiers import pseudonymous_ref
from partners.outbound_events import partner_event_enqueue
from partners.services import partner_suspend

logger = logging.getLogger(__name__)

BUCKETS = 6
DEFAULTS = {
    "window_s": 60,
    "max_decisions": 3000,  # per partner per window (per device: max_decisions_per_device)
    "max_decisions_per_device": 300,
    "max_deny_ratio": 0.8,
    "min_decisions_for_ratio": 50,
    "max_unknown_credentials": 30,  # distinct unknown plate/face tokens per partner per window
    "max_decisions_per_resident": 120,  # allowed decisions naming one resident (all partners) per window
    "max_opens_per_resident": 20,  # remote opens (app) by one resident per window -> open_burst
    "suspend_on": ["unknown_credentials"],  # kinds that also suspend the partner
    "notify_partner": False,  # also send the partner a signed `security.alert` event (partners.outbound_events)
}
DEFAULT_DECISION_RATE = "200/s"

security_alerts_total = Counter(
    "smarthome_security_alerts_total", "Security alerts raised by anomaly detection", ["kind"]
)


def anomaly_settings() -> dict:
    return {**DEFAULTS, **getattr(settings, "ACCESS_ANOMALY", {})}


def _decision_rate() -> Limit:
    return Limit.parse(getattr(settings, "PARTNER_DECISION_RATE", DEFAULT_DECISION_RATE))


def decision_rate_exceeded(*, partner_id: int) -> int | None:
    """Count one request against the partner's decision rate limit (settings.PARTNER_DECISION_RATE,
    e.g. "200/s") without deciding: None if allowed, else the seconds to wait (Retry-After). Other
    partners are not affected. For requests refused before a decision (malformed input);
    decisions themselves are counted by `decision_admit`."""
    return hit(f"partner-decisions:{partner_id}", _decision_rate(), path="partner_decision", fail_open=True)


def _bucket(window_s: int, now: float) -> tuple[int, int]:
    size = max(window_s // BUCKETS, 1)
    return int(now) // size, size


def _count(name: str, window_s: int, now: float, amount: bool = True) -> int:
    """Add one to the current bucket of `name` (if `amount`) and return the window's total."""
    current, size = _bucket(window_s, now)
    key = f"anomaly:{name}:{current}"
    if amount:
        shared_count(key, timeout_s=window_s + size)
    keys = [f"anomaly:{name}:{current - offset}" for offset in range(BUCKETS)]
    return sum(int(value) for value in cache.get_many(keys).values())


# `_totals` on Redis, run by the server in one call (EVALSHA: the script travels once per server).
# KEYS: [the plain counter, if ARGV[1] > 0], the ARGV[2] buckets to bump, then ARGV[4] buckets per
# name to sum. Returns {the plain counter's new value (0 without one), each name's window total}.
TOTALS_LUA = """
local counter_ttl, bumps, bucket_ttl, buckets = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
    tonumber(ARGV[4])
local first, result = 1, {0}
if counter_ttl > 0 then
  redis.call('SET', KEYS[1], 0, 'EX', counter_ttl, 'NX')
  result[1] = redis.call('INCR', KEYS[1])
  first = 2
end
for i = first, first + bumps - 1 do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], bucket_ttl)
end
local window = first + bumps
local values = redis.call('MGET', unpack(KEYS, window))
local total = 0
for i, value in ipairs(values) do
  total = total + (tonumber(value) or 0)
  if i % buckets == 0 then
    result[#result + 1] = total
    total = 0
  end
end
return result
"""


def _totals_script(client):
    """TOTALS_LUA registered with this client (once per client: redis-py's Script loads it on the
    server when the server does not know its hash yet)."""
    script = getattr(client, "_smarthome_totals", None)
    if script is None:
        script = client._smarthome_totals = client.register_script(TOTALS_LUA)
    return script


def _totals(increments: dict[str, bool], window_s: int, now: float,
            counter: tuple[str, int] | None = None) -> dict[str, int]:
    """Add one to the current bucket of each name whose flag is true; the window total of every name.
    `counter` (key, expiry): one more plain counter (a rate limit) bumped alongside, its new value
    returned under its key. On Redis: one round trip, one server-side script (TOTALS_LUA)."""
    client = redis_client()
    if client is None:
        totals = {name: _count(name, window_s, now, amount=bump) for name, bump in increments.items()}
        if counter is not None:
            totals[counter[0]] = shared_count(counter[0], timeout_s=counter[1])
        return totals
    current, size = _bucket(window_s, now)
    keys = [counter[0]] if counter is not None else []
    keys += [f"anomaly:{name}:{current}" for name, bump in increments.items() if bump]
    bumps = len(keys) - (counter is not None)
    keys += [f"anomaly:{name}:{current - offset}" for name in increments for offset in range(BUCKETS)]
    result = _totals_script(client)(keys=keys, args=[counter[1] if counter is not None else 0, bumps,
                                                     window_s + size, BUCKETS], client=client)
    totals = dict(zip(increments, result[1:], strict=True))
    if counter is not None:
        totals[counter[0]] = result[0]
    return totals


def _first_seen(name: str, credential: str, window_s: int, now: float) -> bool:
    current, size = _bucket(window_s, now)
    digest = hashlib.sha256(credential.encode()).hexdigest()[:16]
    return cache.add(f"anomaly:{name}:seen:{current}:{digest}", 1, timeout=window_s + size)


@dataclass(frozen=True)
class Admission:
    """What counting one decision found: `retry_after` (None: answer it; else seconds to wait), the
    alerts it raised and the thresholds crossed whose alerts are left to the caller (`breaches`,
    for `anomaly_alerts_raise`: `decision_admit(..., raise_alerts=False)`)."""

    retry_after: int | None
    alerts: list
    breaches: tuple = ()


def decision_admit(*, partner_id: int, device_ref: str, denied: bool, unknown_credential: str | None = None,
                   resident_id: int | None = None, raise_alerts: bool = True) -> Admission:
    """`_decision_count`, and with the shared cache (Redis) down, admit the decision uncounted:
    a barrier must not stay shut because a counter is unavailable. The outage is counted in
    `smarthome_shared_cache_unavailable_total{path="partner_decision"}` (alert on it).
    `raise_alerts=False`: the thresholds crossed come back in `breaches`, for the caller to raise
    with `anomaly_alerts_raise` once the decision is recorded (its own writes then come after it)."""
    try:
        return _decision_count(partner_id=partner_id, device_ref=device_ref, denied=denied,
                               unknown_credential=unknown_credential, resident_id=resident_id,
                               raise_alerts=raise_alerts)
    except OUTAGE_ERRORS as error:
        shared_cache_unavailable("partner_decision", error)
        return Admission(retry_after=None, alerts=[])


def anomaly_alerts_raise(*, partner_id: int, breaches: tuple) -> list:
    """Raise the alerts of `breaches` (an Admission's, counted with `raise_alerts=False`)."""
    config = anomaly_settings()
    return _alerts_raise(partner_id=partner_id, breaches=list(breaches), window=int(config["window_s"]),
                         config=config)


def _decision_count(*, partner_id: int, device_ref: str, denied: bool, unknown_credential: str | None,
                    resident_id: int | None, raise_alerts: bool = True) -> Admission:
    """Count one decision against the partner's rate limit and in the anomaly windows, and raise
    alerts for every threshold it crosses: one Redis round trip for all counters (plus one cache
    add per breach, and one per unknown credential to tell distinct ones).

    `resident_id` (optional): the resident an allowed decision let through; counted per
    resident across partners (`max_decisions_per_resident`, scope "resident:<pseudonymous ref>").
    A decision refused by the rate limit is still counted in the anomaly windows: a flood past
    the limit still shows up as the anomaly it is."""
    config = anomaly_settings()
    window = int(config["window_s"])
    now = time.time()
    limit = _decision_rate()
    rate_key, window_start = rate_window(f"partner-decisions:{partner_id}", limit, int(now))
    base = f"p{partner_id}"
    device = f"{base}:d:{hashlib.sha256(device_ref.encode()).hexdigest()[:16]}"
    breaches = []
    increments = {f"{base}:n": True, f"{base}:deny": denied, f"{device}:n": True}
    if unknown_credential is not None:
        increments[f"{base}:unknown"] = _first_seen(f"{base}:unknown", unknown_credential, window, now)
    resident = f"r{resident_id}:allowed" if resident_id is not None and not denied else None
    if resident is not None:
        increments[resident] = True
    totals = _totals(increments, window, now, counter=(rate_key, limit.window_s + 1))
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
    if resident is not None and totals[resident] > config["max_decisions_per_resident"]:
        breaches.append((SecurityAlert.Kind.DECISION_RATE, pseudonymous_ref("resident", resident_id),
                         totals[resident], config["max_decisions_per_resident"]))
    wait = retry_after(totals[rate_key], limit, window_start, int(now))
    if not raise_alerts:
        return Admission(wait, [], tuple(breaches))
    return Admission(wait, _alerts_raise(partner_id=partner_id, breaches=breaches, window=window, config=config))


def resident_open_observe(*, resident_id: int, partner_id: int) -> list:
    """Count one remote open of a resident (access.services.opening) in the sliding window.

    Over `max_opens_per_resident` per window (all devices and partners together) an `open_burst`
    alert is raised for the device's partner, scope "resident:<pseudonymous ref>" (never a name);
    it suspends the partner only if `open_burst` is listed in `suspend_on`. One Redis round trip
    (plus one cache add per breach). Returns the new alerts."""
    config = anomaly_settings()
    window = int(config["window_s"])
    name = f"r{resident_id}:open"
    opens = _totals({name: True}, window, time.time())[name]
    breaches = []
    if opens > config["max_opens_per_resident"]:
        breaches.append((SecurityAlert.Kind.OPEN_BURST, pseudonymous_ref("resident", resident_id), opens,
                         config["max_opens_per_resident"]))
    return _alerts_raise(partner_id=partner_id, breaches=breaches, window=window, config=config)


def _alerts_raise(*, partner_id: int, breaches: list, window: int, config: dict) -> list:
    base = f"p{partner_id}"
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
    if anomaly_settings().get("notify_partner"):  # a signed `security.alert` event, through the outbox
        partner_event_enqueue(partner_id=partner_id, event_type="security.alert",
                              data={"alert_id": alert.pk, "kind": kind, "partner_suspended": suspend})
    security_alerts_total.labels(kind=kind).inc()
    logger.warning("security alert", extra={"alert_id": alert.pk, "kind": kind, "partner_id": partner_id,
                                            "observed": observed, "threshold": threshold, "suspended": suspend})
    return alert
