"""Per-process caches of rows that are read far more often than they change, never stale.

How a process learns what changed: PostgreSQL triggers record, at the commit of any write to
data a cache may hold, the *tags* that write changed (`core.DataChange`) under one batch number,
and set the `changes` counter (`core.DataVersion`) to it (core migration 0005; the apps'
migrations say which table records which tags - access migration 0014: `access` for the
structure, `r:<resident id>`, `t:<credential token>`, `tokens`). Each request reads, in one
statement, the counter and every tag changed since the newest batch its process has seen
(`current_version`, once per request: see `request_snapshot`). A cached fact keeps the tags it
depends on and the batch number it was loaded under, and is a hit only while none of its tags
has changed since. So a write drops only the facts it changed - a suspended grant its
resident's, not every building's - and a change (a revoked consent, a suspended grant, a
revoked token) is seen by the very next request in every process. Users: the access decision
(access.policy.CachedFacts) and the partner token check (partners.authentication).

A request that makes one write may skip the read (`assume_unchanged`): it runs on the batch its
process read last, and its write - one statement, `write_if_unchanged` - checks the counter and
writes only if it still equals that batch. A statement that starts after a change committed sees
the new counter, so nothing is written from stale facts: the caller reads the log (`refresh`) and
decides again. The access decision does this, its audit event being that write (one statement
per steady-state decision instead of two). A request that answers otherwise - a refusal - reads the
log first (`refresh`), so no refusal comes from facts a change has replaced.

A process that falls behind - more than CHANGES_READ_LIMIT changes since its last read, a log
pruned past what it has read (`changes_prune`, beat task `core-data-changes-prune`), a counter
that went backwards (a flushed test database) - forgets everything and reloads on demand.

Cache facts, not verdicts: anything that depends on the clock is judged at each use. Off
when settings.VERSIONED_CACHE is false or the database is not PostgreSQL (no triggers
there): every lookup then loads.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections, transaction
from django.db.models import Max
from django.utils import timezone

from core.prepared_statements import prepared_cursor

T = TypeVar("T")

MAX_ENTRIES = 50_000  # per process and cache; the cache is emptied when it grows past this
MAX_TAGS = 200_000  # changed tags a process remembers; past it, it forgets everything
CHANGES_READ_LIMIT = 1_000  # more changes than this since a process's last read: it forgets everything
CHANGES_KEPT_S = 3600  # `changes_prune` deletes batches older than this
# The counter, the newest pruned batch and the tags changed since the batch given (`#` marks the counters).
_CHANGES_SQL = (
    "SELECT '#' || scope, value FROM core_dataversion WHERE scope IN ('changes', 'pruned') "
    "UNION ALL (SELECT tag, seq FROM core_datachange WHERE seq > %s LIMIT %s)"
)
_NONE_YET = 2**62  # the batch to read from before a process has read any: no tags, only the counters
_ASSUMED = "assumed"  # marks a request's snapshot taken from the process, not from the log
# `{insert}`: "INSERT INTO <table> (<columns>) SELECT <values>", made only while the counter is the
# parameter after the values; one row back: the counter and the new row's id (NULL: not written).
_UNCHANGED_SQL = (
    "WITH counter AS (SELECT coalesce(max(value), 0) AS value FROM core_dataversion WHERE scope = 'changes'), "
    "written AS ({insert} FROM counter WHERE counter.value = %s RETURNING id) "
    "SELECT counter.value, (SELECT id FROM written) FROM counter"
)
_request_version: contextvars.ContextVar[list | None] = contextvars.ContextVar("data_version", default=None)


@contextlib.contextmanager
def request_snapshot() -> Iterator[None]:
    """Read the change log at most once during the block (one request: see RequestIdMiddleware).
    A change committed meanwhile is seen by the next request, as if this one had come a moment earlier."""
    token = _request_version.set([])
    try:
        yield
    finally:
        _request_version.reset(token)


class _Changes:
    """What this process has read of the change log (shared by its threads)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.mark: int | None = None  # the newest batch applied; None: nothing read yet
        self.floor = 0  # entries loaded under an older batch are stale (moved up when the process forgets)
        self.changed: dict[str, int] = {}  # tag -> the newest batch that changed it


_changes = _Changes()
_instances: list[VersionedCache] = []


def _database():
    """The default connection, or None when caching is off (one lookup: the proxy costs one per attribute)."""
    db = connections[DEFAULT_DB_ALIAS]
    return db if getattr(settings, "VERSIONED_CACHE", True) and db.vendor == "postgresql" else None


def _probing(db) -> bool:
    """Whether the coming statement is this request's first on a connection Django would health-check
    (CONN_HEALTH_CHECKS); if so, it stands in for the check (marked done)."""
    probing = (db.connection is not None and db.health_check_enabled and not db.health_check_done
               and not db.in_atomic_block)
    if probing:
        db.health_check_done = True
    return probing


def _select_changes(db, read_from: int | None) -> list:
    with prepared_cursor(db) as cursor:
        cursor.execute(_CHANGES_SQL, [_NONE_YET if read_from is None else read_from, CHANGES_READ_LIMIT + 1])
        return cursor.fetchall()


def _read_changes(db, read_from: int | None) -> list:
    """The log since `read_from`. As a request's first query, the read also stands in for Django's
    connection health check (CONN_HEALTH_CHECKS): instead of a `SELECT 1` before it, a connection
    this read finds dead is closed and the read retried once on a fresh one - the same outcome as
    the health check, one round trip fewer on every partner call."""
    probing = _probing(db)
    try:
        return _select_changes(db, read_from)
    except (InterfaceError, OperationalError):
        if not probing:
            raise
        db.close()
        return _select_changes(db, read_from)


def _apply(rows: list, read_from: int | None) -> int:
    """Take in what one read found; returns the batch number the reader is now at."""
    batch = pruned = 0
    tags = []
    for name, value in rows:
        if name == "#changes":
            batch = value
        elif name == "#pruned":
            pruned = value
        else:
            tags.append((name, value))
    with _changes.lock:
        changed = _changes.changed
        if (read_from is None or batch < read_from or pruned > read_from or len(tags) > CHANGES_READ_LIMIT
                or len(changed) + len(tags) > MAX_TAGS):
            _forget(batch)
        else:
            for tag, seq in tags:
                if changed.get(tag, 0) < seq:
                    changed[tag] = seq
            if batch > _changes.mark:
                _changes.mark = batch
    return batch


def _forget(batch: int) -> None:
    """Drop every entry of every cache; what is loaded from now on counts from `batch` (lock held)."""
    _changes.mark = _changes.floor = batch
    _changes.changed = {}
    for instance in _instances:
        instance.clear()


def current_version() -> int | None:
    """The batch number this request reads the caches under (one query per request, the first
    time any cache asks), or None when caching is off."""
    snapshot = _request_version.get()
    if snapshot:
        return snapshot[0]
    db = _database()
    if db is None:
        return None
    read_from = _changes.mark
    batch = _apply(_read_changes(db, read_from), read_from)
    if snapshot is not None:
        snapshot.append(batch)
    return batch


def assume_unchanged() -> int | None:
    """Let this request run on the batch its process read last, without reading the log now; its
    one write must then go through `write_if_unchanged`, and anything else it answers must come
    after `refresh()`. Returns that batch, or None when nothing is assumed (caching off, outside a
    request, the process has read nothing yet, or this request has already read)."""
    snapshot = _request_version.get()
    if snapshot is None or snapshot or _changes.mark is None or _database() is None:
        return None
    snapshot[:] = [_changes.mark, _ASSUMED]
    return snapshot[0]


def assumed_version() -> int | None:
    """The batch this request assumed (`assume_unchanged`) and has not yet confirmed, else None."""
    snapshot = _request_version.get()
    return snapshot[0] if snapshot and len(snapshot) > 1 else None


def refresh() -> bool:
    """If this request runs on an assumed batch: read the log now and run on what it says from here on
    (True: decide again, the facts may have changed); else False (nothing to do)."""
    snapshot = _request_version.get()
    if not snapshot or len(snapshot) == 1:
        return False
    snapshot.clear()
    current_version()
    return True


def unchanged_write_sql(insert: str) -> str:
    """The statement `write_if_unchanged` runs for `insert` ("INSERT INTO t (columns) SELECT values",
    the values as parameters)."""
    return _UNCHANGED_SQL.format(insert=insert)


def write_if_unchanged(sql: str, params: list) -> int | None:
    """Run `sql` (`unchanged_write_sql`) with `params`, checked against the batch this request assumed,
    in one statement: the new row's id, or None when the counter has moved since - or the connection
    was found dead - and nothing was written (then `refresh()` and decide again). Confirms the
    assumed batch when written. As a request's first query it is the connection's health check, as
    the log read is (`_read_changes`); a dead connection is closed, and the caller's `refresh()` reads
    on a new one."""
    batch = assumed_version()
    if batch is None:
        raise RuntimeError("write_if_unchanged needs a batch assumed by assume_unchanged()")
    db = connections[DEFAULT_DB_ALIAS]
    probing = _probing(db)
    try:
        with prepared_cursor(db) as cursor:
            cursor.execute(sql, [*params, batch])
            _, written = cursor.fetchone()
    except (InterfaceError, OperationalError):
        if not probing or db.is_usable():
            raise
        db.close()  # died while idle: the statement never ran
        return None
    if written is not None:
        _request_version.get()[1:] = []  # the batch was current when the row was written
    return written


def _fresh(loaded: int, tags: Iterable[str]) -> bool:
    if loaded < _changes.floor:
        return False
    changed = _changes.changed
    return all(changed.get(tag, 0) <= loaded for tag in tags)


class VersionedCache:
    """Entries tagged with what they depend on and the batch they were loaded under (thread-safe
    enough for the GIL: a thread with an older read can only store an entry under the older batch
    it read, which any change after it makes stale)."""

    def __init__(self, tag: str, max_entries: int = MAX_ENTRIES):
        self.tags = (tag,)  # what an entry depends on unless `get` says otherwise
        self.max_entries = max_entries
        self.hits = self.loads = 0  # lookups served from the cache / loaded, since the process started
        self._entries: dict = {}
        self._lock = threading.Lock()
        _instances.append(self)

    current_version = staticmethod(current_version)

    def get(self, key, version: int | None, load: Callable[[], T],
            tags: Iterable[str] | Callable[[T], Iterable[str]] | None = None) -> T:
        """The value of `key`, loading (and keeping) it on a miss. `tags`: what the value depends
        on (default: this cache's tag), or a function of the loaded value giving them."""
        if version is None:
            return load()
        entry = self._entries.get(key)
        if entry is not None and _fresh(entry[0], entry[1]):
            self.hits += 1
            return entry[2]
        self.loads += 1
        value = load()
        depends = self.tags if tags is None else tuple(tags(value) if callable(tags) else tags)
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (version, depends, value)
        return value

    def forget(self, key) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def lookups() -> dict[str, tuple[int, int]]:
    """{cache tag: (hits, loads)} of this process's caches since it started (a cache's hit ratio
    says how often its lookups cost no query: bench/decisions_scale.py prints it per run)."""
    totals: dict[str, tuple[int, int]] = {}
    for instance in _instances:
        hits, loads = totals.get(instance.tags[0], (0, 0))
        totals[instance.tags[0]] = (hits + instance.hits, loads + instance.loads)
    return totals


def clear_all() -> None:
    """Empty every cache of this process and forget what it read of the log (tests: a rolled-back
    test leaves the counter where it was)."""
    with _changes.lock:
        _changes.reset()
        for instance in _instances:
            instance.clear()


def changes_prune(*, kept_s: int = CHANGES_KEPT_S) -> int:
    """Delete the change log's batches recorded more than `kept_s` ago and note the newest one
    deleted (DataVersion `pruned`), in one transaction: a process that had not read them yet
    forgets everything at its next read instead of missing them. Returns how many rows went."""
    from core.models import DataChange, DataVersion

    cutoff = timezone.now() - datetime.timedelta(seconds=kept_s)
    with transaction.atomic():
        newest = DataChange.objects.filter(changed_at__lt=cutoff).aggregate(newest=Max("seq"))["newest"]
        if newest is None:
            return 0
        pruned, _ = DataVersion.objects.select_for_update().get_or_create(scope="pruned")
        if newest > pruned.value:
            DataVersion.objects.filter(scope="pruned").update(value=newest)
        deleted, _ = DataChange.objects.filter(seq__lte=newest).delete()
    return deleted
