"""Fixed-window rate limits in the shared cache (Redis in production: atomic across processes).

When the shared cache is down a limit cannot be counted: the caller says what happens then -
`fail_open=True` lets the request through uncounted, else `SharedCacheUnavailable` (503 +
Retry-After, core.http.middleware.SharedCacheOutageMiddleware). Either way the outage is counted
in `smarthome_shared_cache_unavailable_total{path}`.
"""

import functools
import time
from dataclasses import dataclass

from core.cache.shared import OUTAGE_ERRORS, SharedCacheUnavailable, shared_cache_unavailable
from core.cache.shared import count as shared_count
from core.cache.shared import current as shared_current


@dataclass(frozen=True)
class Limit:
    """`count` hits per `window_s` seconds."""

    count: int
    window_s: int

    @classmethod
    @functools.lru_cache(maxsize=64)  # parsed on every rate-limited request: the same few strings
    def parse(cls, text: str) -> "Limit":
        """"6/min", "100/hour", "10/s" or "20/30s"."""
        count, _, period = text.partition("/")
        units = {"s": 1, "sec": 1, "min": 60, "m": 60, "hour": 3600, "h": 3600, "day": 86400, "d": 86400}
        digits = "".join(ch for ch in period if ch.isdigit())
        unit = period[len(digits):]
        return cls(count=int(count), window_s=int(digits or 1) * units[unit])


def window(key: str, limit: Limit, now: int) -> tuple[str, int]:
    """The cache key of `key`'s current window and the window's start (epoch seconds)."""
    window_start = now - now % limit.window_s
    return f"ratelimit:{key}:{window_start}", window_start


def retry_after(count: int, limit: Limit, window_start: int, now: int) -> int | None:
    """None while `count` is within the limit, else the seconds until the window resets."""
    if count > limit.count:
        return max(window_start + limit.window_s - now, 1)
    return None


def hit(key: str, limit: Limit, *, path: str, fail_open: bool) -> int | None:
    """Count one hit on `key`; None if allowed, else the seconds until the window resets.
    On Redis: one pipelined round trip (SET NX with the expiry, then INCR).

    Shared cache down: None with `fail_open`, else SharedCacheUnavailable; `path` labels the
    outage metric (the kind of request, e.g. "resident_read")."""
    return attempt(key, limit, path=path, fail_open=fail_open).retry_after_s


@dataclass(frozen=True)
class Attempt:
    retry_after_s: int | None  # None: allowed
    repeated_refusal: bool  # refused, and not the first refusal of this window


def attempt(key: str, limit: Limit, *, path: str, fail_open: bool) -> Attempt:
    """`hit`, also telling whether an earlier hit of the window was refused already (a flood)."""
    now = int(time.time())
    cache_key, window_start = window(key, limit, now)
    try:
        count = shared_count(cache_key, timeout_s=limit.window_s + 1)
    except OUTAGE_ERRORS as error:
        shared_cache_unavailable(path, error)
        if fail_open:
            return Attempt(None, False)
        raise SharedCacheUnavailable(path) from error
    return Attempt(retry_after(count, limit, window_start, now), count > limit.count + 1)


def exceeded(key: str, limit: Limit, *, path: str) -> int | None:
    """Whether `key` has used up `limit` in the current window, without counting a hit: None if
    one more hit is allowed, else the seconds until the window resets (one GET). Shared cache
    down: None (not known to be over; the outage is counted under `path`)."""
    now = int(time.time())
    cache_key, window_start = window(key, limit, now)
    try:
        current = shared_current(cache_key)
    except OUTAGE_ERRORS as error:
        shared_cache_unavailable(path, error)
        return None
    return retry_after(current + 1, limit, window_start, now)
