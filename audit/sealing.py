"""Sealing: committed, unsealed events join their logs and each touched log gets a signed checkpoint.

One sealer at a time (a transaction-scoped advisory lock on PostgreSQL; SQLite serialises
writers itself). A seal takes, in id order, the events above the last seal's `high_id` (at most
AUDIT_SEAL_BATCH) plus any event that has appeared in an earlier seal's gap (an id skipped
because its transaction had not committed yet - looked for during AUDIT_SEAL_GAP_TTL_S, or
always with `sweep=True`), so an event whose transaction commits late is sealed exactly once,
by the next seal. See `audit.membership` for the order this gives every log.

On PostgreSQL the leaf hash of every event was computed by the database when the row was
inserted (generated column `leaf_v2`): a seal reads, per company, the ids and leaf hashes of its
events as two strings (one aggregate query, no per-row work here) and only builds the trees.
Elsewhere the leaves are computed here from the rows.
Event rows are never updated: what a seal decides goes to `AuditSeal` and `AuditCheckpoint`.
"""

import logging
import struct
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from audit import conf, signing
from audit.canonical import COMPANY_INDEX, FIELDS, event_leaf_hash, log_name, strings_from_values
from audit.legacy import legacy_link_pending, legacy_link_write
from audit.membership import existing_ids_in, open_gaps
from audit.merkle import Frontier
from audit.models import AuditCheckpoint, AuditEvent, AuditLog, AuditSeal
from core.copy_insert import copy_create

logger = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x61756469_7365616C  # "audiseal"
PLATFORM_KEY = -1  # company key of the platform log in the streams below
_FETCH = 5000


class SealError(Exception):
    """The stored logs are not in the state their checkpoints describe."""


@dataclass
class SealResult:
    sealed: int
    seal: AuditSeal | None = None
    checkpoints: list[AuditCheckpoint] = field(default_factory=list)

    @property
    def checkpoint(self) -> AuditCheckpoint | None:
        """The checkpoint of a seal that touched exactly one log (tests and small tools)."""
        return self.checkpoints[0] if len(self.checkpoints) == 1 else None


def _lock() -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
        return bool(cursor.fetchone()[0])


# --- reading what a seal takes: per log, its events' ids and leaf hashes in id order ------------


@dataclass
class _Share:
    """One log's part of a seal: event ids (ascending) and their 32-byte leaf hashes, concatenated."""

    ids: list[int] = field(default_factory=list)
    leaves: bytes = b""


# One row per company: its events' ids and leaves, aggregated in the order the ordered subquery
# delivers them. SQL does not promise that order for an aggregate without ORDER BY, so the ids
# come along and are checked; if they are ever out of order, the ordered aggregate is used instead.
# (The ordered one sorts within each group and takes twice as long.)
_PG_SHARES = (
    "SELECT coalesce(b.company_id, -1), string_agg(int8send(b.id), ''::bytea{order}), "
    "string_agg(b.leaf_v2, ''::bytea{order}) FROM (SELECT e.id, e.company_id, e.leaf_v2 FROM audit_event e "
    "WHERE {where} ORDER BY e.id{limit}) b GROUP BY 1"
)


def _shares_pg(where: str, params: list, limit: int | None) -> dict[int, _Share]:
    limit_sql = " LIMIT %s" if limit is not None else ""
    all_params = [*params, *([limit] if limit is not None else [])]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")
        for order in ("", " ORDER BY b.id"):
            cursor.execute(_PG_SHARES.format(order=order, where=where, limit=limit_sql), all_params)
            shares = {}
            for company, id_blob, leaves in cursor.fetchall():
                ids = list(struct.unpack(f">{len(id_blob) // 8}q", id_blob))
                shares[company] = _Share(ids, bytes(leaves))
            if all(_ascending(share.ids) for share in shares.values()):
                return shares
            logger.warning("audit seal: unordered aggregate, taking the ordered one")
    raise SealError("the database returned a seal's events out of order")


def _ascending(ids: list[int]) -> bool:
    return ids == sorted(set(ids))  # C speed; the ids are unique when in order


def _shares_orm(q, limit: int | None) -> dict[int, _Share]:
    rows = AuditEvent.objects.filter(q).order_by("id").values_list(*FIELDS)
    if limit is not None:
        rows = rows[:limit]
    ids: dict[int, list[int]] = {}
    leaves: dict[int, list[bytes]] = {}
    for values in rows.iterator(chunk_size=_FETCH):
        company = values[COMPANY_INDEX]
        key = PLATFORM_KEY if company is None else company
        ids.setdefault(key, []).append(values[0])
        leaves.setdefault(key, []).append(event_leaf_hash(strings_from_values(values)))
    return {key: _Share(ids[key], b"".join(leaves[key])) for key in ids}


def event_shares(*, ids=None, above=None, through=None, limit=None) -> dict[int, _Share]:
    """company key -> _Share of the events with an id in `ids`, or in (above, through] (the first `limit`)."""
    if connection.vendor == "postgresql":
        if ids is not None:
            return _shares_pg("e.id = ANY(%s)", [list(ids)], limit)
        where, params = "e.id > %s", [above]
        if through is not None:
            where, params = where + " AND e.id <= %s", [*params, through]
        return _shares_pg(where, params, limit)
    q = Q(id__in=list(ids)) if ids is not None else Q(id__gt=above)
    if ids is None and through is not None:
        q &= Q(id__lte=through)
    return _shares_orm(q, limit)


# --- logs and their latest checkpoints -------------------------------------------------------


def logs_for(company_keys) -> dict[int, AuditLog]:
    """company key (-1: platform) -> AuditLog, creating the logs that do not exist yet."""
    keys = set(company_keys)
    wanted = [AuditLog(name=log_name(None if k == PLATFORM_KEY else k), company_id=None if k == PLATFORM_KEY else k)
              for k in keys]
    AuditLog.objects.bulk_create(wanted, ignore_conflicts=True)
    logs = AuditLog.objects.filter(name__in=[log.name for log in wanted])
    return {PLATFORM_KEY if log.company_id is None else log.company_id: log for log in logs}


def latest_checkpoints(log_ids) -> dict[int, AuditCheckpoint]:
    """log id -> its latest checkpoint (without the leaf hashes)."""
    latest = AuditCheckpoint.objects.filter(log_id=OuterRef("log_id")).order_by("-tree_size").values("pk")[:1]
    rows = (
        AuditCheckpoint.objects.filter(log_id__in=list(log_ids))
        .filter(pk=Subquery(latest))
        .defer("leaf_hashes")
    )
    return {cp.log_id: cp for cp in rows}


# --- the seal --------------------------------------------------------------------------------


def audit_seal(*, max_events: int | None = None, sweep: bool = False, through_id: int | None = None
               ) -> SealResult | None:
    """Seal up to `max_events` (AUDIT_SEAL_BATCH) committed unsealed events: one `AuditSeal`,
    and per log it touched one signed checkpoint.

    Looks for events in earlier seals' gaps (ids skipped while their transaction was open)
    for AUDIT_SEAL_GAP_TTL_S, or in every gap with `sweep`; `through_id` caps the new ids
    (the legacy migration). Returns None when another sealer holds the lock, SealResult(0)
    when nothing was waiting. Raises SealError if a log's checkpoints do not follow on from
    each other. Seals are not themselves audit events (they would feed the next seal forever):
    the seal and checkpoint rows are their record.
    """
    limit = max_events or conf.seal_batch()
    with transaction.atomic():
        if not _lock():
            return None
        link_bound = legacy_link_pending()
        if link_bound is not None:
            through_id = link_bound if through_id is None else min(through_id, link_bound)
        previous = AuditSeal.objects.order_by("-pk").first()
        low = previous.high_id if previous else 0
        now = timezone.now()
        ranges, already_late = open_gaps(since=None if sweep else now - timedelta(seconds=conf.seal_gap_ttl_s()))
        late_ids = [i for i in existing_ids_in(ranges) if i not in already_late]
        shares = event_shares(ids=late_ids) if late_ids else {}
        new: dict[int, _Share] = {}
        if through_id is None or through_id > low:
            new = event_shares(above=low, through=through_id, limit=max(limit - len(late_ids), 0))
        for company, share in new.items():  # within a seal, late ids (all below `low`) come first
            earlier = shares.get(company)
            shares[company] = _Share(earlier.ids + share.ids, earlier.leaves + share.leaves) if earlier else share
        count = sum(len(share.ids) for share in new.values())
        high = max((share.ids[-1] for share in new.values()), default=low)
        gaps = _gaps(new, low, high) if high - low != count else []
        sealed = count + len(late_ids)
        if not sealed:
            result = SealResult(0)
        else:
            seal = AuditSeal.objects.create(sealed_at=now, low_id=low, high_id=high, gaps=gaps, late=late_ids,
                                            events=sealed)
            result = SealResult(sealed, seal, _checkpoints(seal, shares))
        if link_bound is not None and (result.seal.high_id if result.seal else low) >= link_bound:
            legacy_link_write(seal=result.seal or previous)
    if result.sealed:
        logger.info("audit logs sealed", extra={"sealed": sealed, "seal": result.seal.pk,
                                                "logs": len(result.checkpoints)})
    return result


def _gaps(shares: dict[int, _Share], low: int, high: int) -> list[list[int]]:
    """The ids in (low, high] no share holds, as [a, b] ranges."""
    ids = sorted(i for share in shares.values() for i in share.ids)
    gaps, previous = [], low
    for event_id in ids:
        if event_id > previous + 1:
            gaps.append([previous + 1, event_id - 1])
        previous = event_id
    return gaps


def _checkpoints(seal: AuditSeal, shares: dict[int, _Share]) -> list[AuditCheckpoint]:
    logs = logs_for(shares)
    latest = latest_checkpoints(log.pk for log in logs.values())
    made = []
    for company, share in sorted(shares.items()):
        log = logs[company]
        blob = share.leaves
        leaves = [blob[i:i + 32] for i in range(0, len(blob), 32)]
        previous = latest.get(log.pk)
        if previous is not None and previous.seal_id >= seal.pk:
            raise SealError(f"log {log.name} already has a checkpoint from seal {previous.seal_id}")
        frontier = Frontier.from_hex(previous.tree_size, previous.frontier) if previous else Frontier()
        first = frontier.size
        frontier.extend(leaves)
        root_hex = frontier.root().hex()
        key_id, signature = signing.sign(signing.checkpoint_message(log.name, frontier.size, root_hex, seal.sealed_at))
        made.append(AuditCheckpoint(
            log=log, seal=seal, first_position=first, tree_size=frontier.size, root_hash=root_hex,
            signed_at=seal.sealed_at, key_id=key_id, signature=signature, frontier=frontier.to_hex(),
            leaf_hashes=blob,
        ))
    copy_create(made)  # not bulk_create: it would spell every leaf hash out in the SQL text
    return list(AuditCheckpoint.objects.filter(seal=seal).select_related("log").defer("leaf_hashes")
                .order_by("log__company_id"))


def audit_seal_pending(*, max_rounds: int = 100, sweep: bool = False) -> int:
    """Seal until nothing is waiting (or another sealer runs); returns the number sealed."""
    total = 0
    for round_ in range(max_rounds):
        result = audit_seal(sweep=sweep and round_ == 0)
        if result is None or result.sealed == 0:
            break
        total += result.sealed
    return total
