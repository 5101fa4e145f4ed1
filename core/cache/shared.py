"""The raw Redis client behind Django's shared cache, for counters that need one round trip,
and what a caller does when that shared cache (Redis) is down.

Django's cache API costs a round trip per call (`add`, then `incr`); rate limits and anomaly
counters pipeline their commands on the raw client instead. With another cache backend
(locmem in `--quick` tests) there is no raw client and callers fall back to the cache API.

Outages: `OUTAGE_ERRORS` are what redis-py raises when the server cannot be reached in time.
Every caller that keeps working without the cache (fail open) or refuses with 503 calls
`shared_cache_unavailable(path, error)`: it counts `smarthome_shared_cache_unavailable_total{path}`
(the alert metric) and logs one line. Which path does what is in docs/operations.md.
"""

import logging

import redis.exceptions
from django.core.cache import cache
from prometheus_client import Counter

logger = logging.getLogger(__name__)

OUTAGE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# Seconds a refused caller is told to wait (Retry-After) while the shared cache is down.
OUTAGE_RETRY_AFTER_S = 5

shared_cache_unavailable_total = Counter(
    "smarthome_shared_cache_unavailable_total",
    "Requests that found the shared cache (Redis) unavailable, by path kind; each one either went on "
    "without it (fail open) or was refused with 503",
    ["path"],
)


class SharedCacheUnavailable(Exception):
    """The shared cache did not answer and the caller must not go on without it (answered 503)."""

    def __init__(self, path: str):
        super().__init__(f"shared cache unavailable ({path})")
        self.path = path
        self.retry_after_s = OUTAGE_RETRY_AFTER_S


def shared_cache_unavailable(path: str, error: BaseException) -> None:
    """Count and log one request of kind `path` that found the shared cache down."""
    shared_cache_unavailable_total.labels(path=path).inc()
    logger.warning("shared cache unavailable", extra={"path": path, "error": type(error).__name__})


def redis_client():
    """The redis-py client of the default cache when it is Django's RedisCache, else None.

    Kept on the cache backend (one per thread, like Django's own connections), so the client
    object is built once, not per call."""
    backend = getattr(cache, "_cache", None)
    if not hasattr(backend, "get_client"):
        return None
    client = getattr(backend, "_smarthome_raw_client", None)
    if client is None:
        client = backend._smarthome_raw_client = backend.get_client(write=True)
    return client


def count(key: str, *, timeout_s: int) -> int:
    """Add one to the counter `key` (created with a `timeout_s` expiry) and return its new value:
    one pipelined round trip on Redis (SET NX EX, then INCR), the cache API elsewhere."""
    client = redis_client()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        pipe.set(key, 0, ex=timeout_s, nx=True)
        pipe.incr(key)
        return pipe.execute()[1]
    if cache.add(key, 1, timeout=timeout_s):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=timeout_s)
        return 1


def current(key: str) -> int:
    """The value of the counter `key` (0 when absent), without changing it: one GET."""
    client = redis_client()
    value = client.get(key) if client is not None else cache.get(key)
    return int(value or 0)
