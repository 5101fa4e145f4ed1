"""One circuit breaker per partner, its state shared by every process through Redis.

pybreaker keeps the state (closed / open / half-open, consecutive failures, when it opened) in
`CircuitRedisStorage` when REDIS_URL is set, in memory otherwise. Failures are what says the
partner is unwell - 5xx, timeouts, connection and TLS errors; a 4xx or a 429 is the partner
answering, so it counts as a success. After `breaker_reset_s` one caller (across all
processes: a cache lock) gets to probe; the others keep failing fast until it is back. When a
breaker closes again, `partner_breaker_closed` is sent (the outbox then sends what waited).
`shared_states` reads every partner's state as all processes share it (for /metrics, at scrape
time: partners/metrics.py), never this process's last sight of it.

A call to a healthy partner costs one Redis round trip (`SharedStorage.snapshot`: the state and
the failure count together; the count is reset after a success only when it is not zero
already), not pybreaker's three (the state twice, then the reset).
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
from partners.signals import partner_breaker_closed

logger = logging.getLogger(__name__)
T = TypeVar("T")


class _StateListener(pybreaker.CircuitBreakerListener):
    """Logs every change this process sees; tells `partner_breaker_closed` when one closes again."""

    def __init__(self, partner_id: int, slug: str):
        self.partner_id, self.slug = partner_id, slug

    def state_change(self, cb, old_state, new_state):
        logger.warning("partner circuit breaker %s", new_state.name, extra={"partner": self.slug})
        if new_state.name == pybreaker.STATE_CLOSED and old_state is not None and old_state.name != new_state.name:
            partner_breaker_closed.send(sender=PartnerBreaker, partner_id=self.partner_id)


class SharedStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage, plus `snapshot`: the state and the failure count in one round
    trip. After a snapshot (per thread, until `forget_snapshot`), resetting a count it saw at zero
    sends nothing."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._seen = threading.local()

    def snapshot(self) -> str:
        """The shared state, reading the failure count with it (pybreaker's fallbacks on errors)."""
        try:
            state, failures = self._redis.mget([self._namespace("state"), self._namespace("fail_counter")])
        except redis.RedisError:
            self.logger.exception("RedisError: falling back to default circuit state")
            return self._fallback_circuit_state
        if state is None:  # missing: pybreaker re-initialises it
            self._initialize_redis_state(self._fallback_circuit_state)
            return self._fallback_circuit_state
        self._seen.failures = int(failures or 0)
        return state.decode()

    def forget_snapshot(self) -> None:
        self._seen.failures = None

    def reset_counter(self) -> None:
        if getattr(self._seen, "failures", None) == 0:
            return
        super().reset_counter()
        self._seen.failures = 0


class PartnerBreaker(pybreaker.CircuitBreaker):
    def call(self, func: Callable[..., T], *args, **kwargs) -> T:
        # pybreaker holds its lock for the whole call, which would let only one request per
        # partner run at a time in this process. The state lives in Redis and is shared with
        # other processes anyway, so the lock would protect nothing the other processes respect.
        return self.state.call(func, *args, **kwargs)

    def shared_state(self) -> str:
        """The state every process shares, read once for a call (`call_in`)."""
        storage = self._state_storage
        return storage.snapshot() if isinstance(storage, SharedStorage) else storage.state

    def call_in(self, state: str, func: Callable[[], T]) -> T:
        """`call` in `state` as just read by `shared_state` (not read again); this process's state
        object follows it first (pybreaker's setter: the listeners hear of the change)."""
        if self._state.name != state:
            self.state = state
        return self._state.call(func)

    def forget_snapshot(self) -> None:
        if isinstance(self._state_storage, SharedStorage):
            self._state_storage.forget_snapshot()


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
        return SharedStorage(pybreaker.STATE_CLOSED, _redis_client(), namespace=_namespace(conn.partner_id))
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
                listeners=[_StateListener(conn.partner_id, conn.slug)],
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
    probe_key = None
    try:
        state = breaker.shared_state()
        if state != pybreaker.STATE_CLOSED:
            if state == pybreaker.STATE_OPEN and not _reset_elapsed(conn, breaker):
                raise _open(conn, operation, breaker)
            # Reset timeout passed (or half-open): only one caller across processes probes.
            probe_key = f"partners:breaker-probe:{conn.partner_id}"
            if not cache.add(probe_key, 1, timeout=max(1, int(sum(conn.policy.timeout(operation)) + 1))):
                probe_key = None
                raise _open(conn, operation, breaker)
        return breaker.call_in(state, func)
    except pybreaker.CircuitBreakerError:
        raise _open(conn, operation, breaker) from None
    finally:
        breaker.forget_snapshot()
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
