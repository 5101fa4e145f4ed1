"""OAuth2 client-credentials access tokens for partner calls, shared by every process.

The token lives in Django's cache (Redis in production) under a key per partner and client
id, with its expiry. It is refreshed when less than `token_refresh_margin_s` remain, and when a
call was refused with 401 (`stale=` the token that was refused). Concurrent refreshes collapse
into one: the first caller takes a cache lock (`cache.add`), the others keep using a still
valid token or poll the cache for the fresh one. Each process also keeps its own copy of what it
last read or stored, used while it is valid and not refused: a call to the partner then needs no
cache read for its token. The token is never logged.
"""

from __future__ import annotations

import hashlib
import time
from urllib.parse import quote_plus

import requests
from django.core.cache import cache

from partners.client.connection import PartnerConnection

POLL_INTERVAL_S = 0.05
_local: dict[str, dict] = {}  # this process's copy of each shared entry it read or stored


def _key(conn: PartnerConnection) -> str:
    client = hashlib.sha256(conn.client_id.encode()).hexdigest()[:16]
    return f"partners:token:{conn.partner_id}:{client}"


def cached_token(conn: PartnerConnection) -> dict | None:
    """``{"token", "expires_at"}`` from the shared cache, or None."""
    key = _key(conn)
    entry = cache.get(key)
    if entry is not None:
        _local[key] = entry
    return entry


def store_token(conn: PartnerConnection, token: str, expires_in: float) -> dict:
    entry = {"token": token, "expires_at": time.time() + expires_in}
    key = _key(conn)
    cache.set(key, entry, timeout=max(1, int(expires_in)))
    _local[key] = entry
    return entry


def forget_local_tokens() -> None:
    """Drop this process's copies (tests; the shared entries stay)."""
    _local.clear()


def _usable(entry: dict | None, *, margin_s: float, stale: str | None) -> bool:
    return bool(entry) and entry["token"] != stale and entry["expires_at"] - time.time() > margin_s


def access_token(conn: PartnerConnection, fetch, *, stale: str | None = None) -> str:
    """A valid access token for `conn`; `fetch()` -> (token, expires_in) asks the partner.

    `stale`: a token the partner just refused; it is never returned again.
    """
    margin = conn.policy.token_refresh_margin_s
    entry = _local.get(_key(conn))
    if _usable(entry, margin_s=margin, stale=stale):
        return entry["token"]
    entry = cached_token(conn)
    if _usable(entry, margin_s=margin, stale=stale):
        return entry["token"]
    lock_key = _key(conn) + ":refresh"
    lock_ttl = max(1, int(sum(conn.policy.timeout("token")) + 1))
    deadline = time.monotonic() + lock_ttl
    while True:
        if cache.add(lock_key, 1, timeout=lock_ttl):
            try:
                entry = cached_token(conn)  # someone may have refreshed while we waited
                if _usable(entry, margin_s=margin, stale=stale):
                    return entry["token"]
                token, expires_in = fetch()
                return store_token(conn, token, expires_in)["token"]
            finally:
                cache.delete(lock_key)
        # Another process is refreshing: a token that is still valid (just inside the margin)
        # serves meanwhile; otherwise wait for the new one.
        entry = cached_token(conn)
        if _usable(entry, margin_s=min(margin, 1.0), stale=stale):
            return entry["token"]
        if time.monotonic() > deadline:
            # The refresher died holding the lock; its TTL has passed, so take it over.
            cache.delete(lock_key)
            deadline = time.monotonic() + lock_ttl
        time.sleep(POLL_INTERVAL_S)


def request_token(session: requests.Session, conn: PartnerConnection) -> requests.Response:
    """POST /oauth/token with HTTP Basic client authentication (RFC 6749 §2.3.1)."""
    return session.post(
        conn.url("/oauth/token"),
        data={"grant_type": "client_credentials"},
        auth=(quote_plus(conn.client_id), quote_plus(conn.client_secret)),
        timeout=conn.policy.timeout("token"),
        allow_redirects=False,
    )
