"""The raw Redis client behind Django's shared cache, for counters that need one round trip.

Django's cache API costs a round trip per call (`add`, then `incr`); rate limits and anomaly
counters pipeline their commands on the raw client instead. With another cache backend
(locmem in `--quick` tests) there is no raw client and callers fall back to the cache API.
"""

from django.core.cache import cache


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


def queue_count(pipe, key: str, *, timeout_s: int) -> None:
    """Queue `count`'s two commands on a Redis pipeline (SET NX EX, then INCR: the second reply is the value)."""
    pipe.set(key, 0, ex=timeout_s, nx=True)
    pipe.incr(key)


def count(key: str, *, timeout_s: int) -> int:
    """Add one to the counter `key` (created with a `timeout_s` expiry) and return its new value:
    one pipelined round trip on Redis (SET NX EX, then INCR), the cache API elsewhere."""
    client = redis_client()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        queue_count(pipe, key, timeout_s=timeout_s)
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
