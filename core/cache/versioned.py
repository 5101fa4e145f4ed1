"""Per-process caches of rows that are read far more often than they change, never stale.

Each process keeps what it loaded, tagged with the `DataVersion` counter of its scope read
just before loading; a lookup is a hit only while the counter is still the same. PostgreSQL
triggers bump the counter at the commit of any write to the scope's tables (access migration
0005), so one indexed `SELECT` replaces the queries behind it, and a change - a revoked
consent, a suspended grant, a revoked token - is seen by the very next request in every
process. Users: the access decision (scope `access`, access.services.decisions) and the
partner token check (scope `tokens`, partners.authentication).

Cache facts, not verdicts: anything that depends on the clock is judged at each use. Off
when settings.VERSIONED_CACHE is false or the database is not PostgreSQL (no triggers
there): every lookup then loads.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

T = TypeVar("T")

MAX_ENTRIES = 50_000  # per process and scope; the cache is emptied when it grows past this
_VERSIONS_SQL = "SELECT scope, value FROM core_dataversion"
# Inside a request: the counters of every scope, read once by the first cache that asks.
_READ = "__read__"
_request_versions: contextvars.ContextVar[dict | None] = contextvars.ContextVar("data_versions", default=None)


@contextlib.contextmanager
def request_snapshot() -> Iterator[None]:
    """Read the data versions at most once during the block (one request: see RequestIdMiddleware).
    A change committed meanwhile is seen by the next request, as if this one had come a moment earlier."""
    token = _request_versions.set({})
    try:
        yield
    finally:
        _request_versions.reset(token)


def _database():
    """The default connection, or None when caching is off (one lookup: the proxy costs one per attribute)."""
    db = connections[DEFAULT_DB_ALIAS]
    return db if getattr(settings, "VERSIONED_CACHE", True) and db.vendor == "postgresql" else None


def _select_versions(db) -> dict:
    with db.cursor() as cursor:
        cursor.execute(_VERSIONS_SQL)
        return dict(cursor.fetchall())


def _read_versions(db) -> dict:
    """The counters of every scope. As a request's first query, the read also stands in for Django's
    connection health check (CONN_HEALTH_CHECKS): instead of a `SELECT 1` before it, a connection
    this read finds dead is closed and the read retried once on a fresh one - the same outcome as
    the health check, one round trip fewer on every partner call."""
    probing = (db.connection is not None and db.health_check_enabled and not db.health_check_done
               and not db.in_atomic_block)
    if probing:
        db.health_check_done = True
    try:
        return _select_versions(db)
    except (InterfaceError, OperationalError):
        if not probing:
            raise
        db.close()
        return _select_versions(db)


_instances: list[VersionedCache] = []


class VersionedCache:
    """Entries tagged with the data version they were loaded under (thread-safe enough for the GIL:
    a stale thread can only store an entry under the older version it read, never a newer one)."""

    def __init__(self, scope: str, max_entries: int = MAX_ENTRIES):
        self.scope = scope
        self.max_entries = max_entries
        self._entries: dict = {}
        self._lock = threading.Lock()
        _instances.append(self)

    def current_version(self) -> int | None:
        """The scope's counter (one query for all scopes per request), or None when caching is off.
        A scope without a row has never changed since the triggers were installed: 0."""
        snapshot = _request_versions.get()
        if snapshot is None or _READ not in snapshot:
            db = _database()
            if db is None:
                return None
            versions = _read_versions(db)
            if snapshot is None:
                return versions.get(self.scope, 0)
            snapshot.update(versions, **{_READ: True})
        return snapshot.get(self.scope, 0)

    def get(self, key, version: int | None, load: Callable[[], T]) -> T:
        """The value of `key` loaded under `version`, loading (and keeping) it on a miss."""
        if version is None:
            return load()
        entry = self._entries.get(key)
        if entry is not None and entry[0] == version:
            return entry[1]
        value = load()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (version, value)
        return value

    def forget(self, key) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def clear_all() -> None:
    """Empty every cache of this process (tests: a rolled-back test leaves the counters as they were)."""
    for instance in _instances:
        instance.clear()
