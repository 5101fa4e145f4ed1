"""One circuit breaker per partner, its state shared by every process through Redis.

pybreaker keeps the state (closed / open / half-open, consecutive failures, when it opened) in
`CircuitRedisStorage` when REDIS_URL is set, in memory otherwise. Failures are what says the
partner is unwell - 5xx, timeouts, connection and TLS errors; a 4xx or a 429 is the partner
answering, so it counts as a success. After `breaker_reset_s` one caller (across all
processes: a cache lock) gets to probe; the others keep failing fast until it is back.
`shared_states` reads every partner's state as all processes share it (for /metrics, at scrape
time: partners/metrics.py), never this process's last sight of it.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

import pybreaker
import redis
from django.conf import settings
from django.core.cache import cache

from partners.client.connection import PartnerConnection
from partners.client.errors import CircuitOpen, PartnerRejected, RateLimited

logger = logging.getLogger(__name__)
T = TypeVar("T")


class _StateLogListener(pybreaker.CircuitBreakerListener):
    def __init__(self, slug: str):
        self.slug = slug

    def state_change(self, cb, old_state, new_state):
        logger.warning("partner circuit breaker %s", new_state.name, extra={"partner": self.slug})


class PartnerBreaker(pybreaker.CircuitBreaker):
    def call(self, func: Callable[..., T], *args, **kwargs) -> T:
        # pybreaker holds its lock for the whole call, which would let only one request per
        # partner run at a time in this process. The state lives in Redis and is shared with
        # other processes anyway, so the lock would protect nothing the other processes respect.
        return self.state.call(func, *args, **kwargs)


_breakers: dict[tuple, PartnerBreaker] = {}
_lock = threading.Lock()
_redis = None


def _redis_client():
    global _redis
    if _redis is None:
        # CircuitRedisStorage decodes bytes itself: the client must not.
        _redis = redis.Redis.from_url(
            settings.REDIS_URL, decode_responses=False, socket_timeout=1, socket_connect_timeout=1,
            **settings.REDIS_SSL_OPTIONS,
        )
    return _redis


def _storage(conn: PartnerConnection) -> pybreaker.CircuitBreakerStorage:
    if settings.REDIS_URL:
        return pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, _redis_client(), namespace=_namespace(conn.partner_id)
        )
    return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)


def _namespace(partner_id: int) -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX') or 'smarthome'}:breaker:{partner_id}"


def shared_states(partner_ids: list[int]) -> dict[int, str]:
    """Each partner's breaker state ("closed", "open", "half-open") as every process shares it:
    read from Redis in one round trip (redis-py's connection errors propagate); without Redis,
    this process's own breakers (the embedded mode keeps no shared breaker state). A breaker
    that never ran is closed."""
    if settings.REDIS_URL:
        keys = [f"{_namespace(partner_id)}:{pybreaker.CircuitRedisStorage.BASE_NAMESPACE}:state"
                for partner_id in partner_ids]
        values = _redis_client().mget(keys) if keys else []
        return {partner_id: value.decode() if value else pybreaker.STATE_CLOSED
                for partner_id, value in zip(partner_ids, values, strict=True)}
    with _lock:
        local = {key[0]: breaker.current_state for key, breaker in _breakers.items()}
    return {partner_id: local.get(partner_id, pybreaker.STATE_CLOSED) for partner_id in partner_ids}


def breaker_for(conn: PartnerConnection) -> PartnerBreaker:
    """This process's breaker object for the partner (its state is the shared one)."""
    key = (conn.partner_id, conn.policy.breaker_fail_max, conn.policy.breaker_reset_s, bool(settings.REDIS_URL))
    with _lock:
        breaker = _breakers.get(key)
        if breaker is None:
            breaker = _breakers[key] = PartnerBreaker(
                fail_max=conn.policy.breaker_fail_max,
                reset_timeout=conn.policy.breaker_reset_s,
                exclude=[PartnerRejected, RateLimited],
                listeners=[_StateLogListener(conn.slug)],
                state_storage=_storage(conn),
                name=f"partner:{conn.slug}",
                throw_new_error_on_trip=False,  # the call that trips it reports its own error
            )
        return breaker


def forget_breakers() -> None:
    """Drop this process's breaker objects and Redis client (tests; the shared state stays)."""
    global _redis
    with _lock:
        _breakers.clear()
        _redis = None


def retry_after_s(conn: PartnerConnection, breaker: PartnerBreaker) -> float:
    """When trying again makes sense, as the partner's breaker sees it (at least 1 s).

    Open (or half-open): the rest of its recovery time. Closed: the share of the recovery time
    that the consecutive failures have used up on the way to opening it - a first refused
    connection says "a few seconds", the one that trips the breaker says "the whole recovery
    time". Never a flat 1 s while the partner keeps failing: every client would retry at once."""
    reset_s = conn.policy.breaker_reset_s
    if breaker.current_state != pybreaker.STATE_CLOSED:
        opened_at = breaker._state_storage.opened_at  # pybreaker exposes no public getter
        if opened_at is None:
            return reset_s
        reopen = opened_at + datetime.timedelta(seconds=reset_s)
        return max(1.0, (reopen - datetime.datetime.now(datetime.UTC)).total_seconds())
    fail_max = max(conn.policy.breaker_fail_max, 1)
    return max(1.0, reset_s * min(breaker.fail_counter, fail_max) / fail_max)


def failure_retry_after_s(conn: PartnerConnection) -> float:
    """`retry_after_s` of the partner's breaker after a failed call."""
    return retry_after_s(conn, breaker_for(conn))


def guarded(conn: PartnerConnection, operation: str, func: Callable[[], T]) -> T:
    """Run `func` (one attempt) under the partner's breaker; CircuitOpen if it may not run."""
    breaker = breaker_for(conn)
    state = breaker.current_state
    probe_key = None
    if state != pybreaker.STATE_CLOSED:
        if state == pybreaker.STATE_OPEN and not _reset_elapsed(conn, breaker):
            raise _open(conn, operation, breaker)
        # Reset timeout passed (or half-open): only one caller across processes probes.
        probe_key = f"partners:breaker-probe:{conn.partner_id}"
        if not cache.add(probe_key, 1, timeout=max(1, int(sum(conn.policy.timeout(operation)) + 1))):
            raise _open(conn, operation, breaker)
    try:
        return breaker.call(func)
    except pybreaker.CircuitBreakerError:
        raise _open(conn, operation, breaker) from None
    finally:
        if probe_key:
            cache.delete(probe_key)


def _reset_elapsed(conn: PartnerConnection, breaker: PartnerBreaker) -> bool:
    opened_at = breaker._state_storage.opened_at
    if opened_at is None:
        return True
    elapsed = datetime.datetime.now(datetime.UTC) - opened_at
    return elapsed.total_seconds() >= conn.policy.breaker_reset_s


def _open(conn: PartnerConnection, operation: str, breaker: PartnerBreaker) -> CircuitOpen:
    return CircuitOpen(
        f"circuit breaker for partner {conn.slug} is open",
        retry_after_s=retry_after_s(conn, breaker),
        operation=operation,
        partner=conn.slug,
    )
