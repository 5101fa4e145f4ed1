"""Sealing: committed, unsealed events join their logs and each touched log gets a signed checkpoint.

One sealer at a time (a transaction-scoped advisory lock on PostgreSQL; SQLite serialises
writers itself). A seal takes, in id order, the events above the last seal's `high_id` (at most
AUDIT_SEAL_BATCH) plus any event that has appeared in an earlier seal's gap (an id skipped
because its transaction had not committed yet - looked for during AUDIT_SEAL_GAP_TTL_S, or
always with `sweep=True`), so an event whose transaction commits late is sealed exactly once,
by the next seal. See `audit.membership` for the order this gives every log.

On PostgreSQL the leaf hash of every event was computed by the database when the row was
inserted (generated column `leaf_v2`): a seal streams (id, company, leaf hash) with one binary
COPY and only builds the trees. Elsewhere the leaves are computed here from the rows.
Event rows are never updated: what a seal decides goes to `AuditSeal` and `AuditCheckpoint`.
"""

import logging
import struct
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from audit import conf, signing
from audit.canonical import COMPANY_INDEX, FIELDS, event_leaf_hash, log_name, strings_from_values
from audit.membership import existing_ids_in, open_gaps
from audit.merkle import Frontier
from audit.models import AuditCheckpoint, AuditEvent, AuditLog, AuditSeal

logger = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x61756469_7365616C  # "audiseal"
PLATFORM_KEY = -1  # company key of the platform log in the streams below
_RECORD = struct.Struct(">hiqiqi32s")  # binary COPY row: 3 fields, id int8, company int8, leaf bytea(32)
_COPY_HEADER = 19
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


# --- reading (id, company key, leaf hash) in id order ------------------------------------------


def _leaves_pg(where: str, params: list, limit: int | None):
    """Yield (id, company key, leaf) chunks: lists of tuples as `struct.iter_unpack` gives them."""
    sql = (
        "COPY (SELECT e.id, coalesce(e.company_id, -1), e.leaf_v2 FROM audit_event e "  # noqa: S608 - constant SQL
        f"WHERE {where} ORDER BY e.id{' LIMIT %s' if limit is not None else ''}) TO STDOUT (FORMAT binary)"
    )
    pending = b""
    header = True
    with connection.cursor() as cursor, cursor.copy(sql, [*params, *([limit] if limit is not None else [])]) as copy:
        for block in copy:
            data = pending + bytes(block) if pending else bytes(block)
            if header:
                data, header = data[_COPY_HEADER:], False
            usable = len(data) - len(data) % _RECORD.size
            if usable:
                yield [(r[2], r[4], r[6]) for r in _RECORD.iter_unpack(data[:usable])]
            pending = data[usable:]
    # what remains is the 2-byte end-of-data marker


def _leaves_orm(q, limit: int | None):
    rows = AuditEvent.objects.filter(q).order_by("id").values_list(*FIELDS)
    if limit is not None:
        rows = rows[:limit]
    chunk = []
    for values in rows.iterator(chunk_size=_FETCH):
        company = values[COMPANY_INDEX]
        leaf = event_leaf_hash(strings_from_values(values))
        chunk.append((values[0], PLATFORM_KEY if company is None else company, leaf))
        if len(chunk) >= _FETCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def event_leaves(*, ids=None, above=None, through=None, limit=None):
    """(id, company key, leaf) chunks of events with an id in `ids`, or in (above, through]."""
    from django.db.models import Q

    if connection.vendor == "postgresql":
        if ids is not None:
            return _leaves_pg("e.id = ANY(%s)", [list(ids)], limit)
        where, params = "e.id > %s", [above]
        if through is not None:
            where, params = where + " AND e.id <= %s", [*params, through]
        return _leaves_pg(where, params, limit)
    q = Q(id__in=list(ids)) if ids is not None else Q(id__gt=above)
    if ids is None and through is not None:
        q &= Q(id__lte=through)
    return _leaves_orm(q, limit)


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
    from audit.legacy import legacy_link_pending

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
        per_log: dict[int, list[bytes]] = {}
        sealed = 0
        if late_ids:
            for chunk in event_leaves(ids=late_ids):
                sealed += _distribute(chunk, per_log)
        high, gaps = low, []
        if through_id is None or through_id > low:
            for chunk in event_leaves(above=low, through=through_id, limit=max(limit - sealed, 0)):
                for event_id, _company, _leaf in chunk:
                    if event_id > high + 1:
                        gaps.append([high + 1, event_id - 1])
                    high = event_id
                sealed += _distribute(chunk, per_log)
        if not sealed:
            result = SealResult(0)
        else:
            seal = AuditSeal.objects.create(sealed_at=now, low_id=low, high_id=high, gaps=gaps, late=late_ids,
                                            events=sealed)
            result = SealResult(sealed, seal, _checkpoints(seal, per_log))
        if link_bound is not None and (result.seal.high_id if result.seal else low) >= link_bound:
            from audit.legacy import legacy_link_write

            legacy_link_write(seal=result.seal or previous)
    if result.sealed:
        logger.info("audit logs sealed", extra={"sealed": sealed, "seal": result.seal.pk,
                                                "logs": len(result.checkpoints)})
    return result


def _distribute(chunk, per_log: dict[int, list[bytes]]) -> int:
    for _event_id, company, leaf in chunk:
        leaves = per_log.get(company)
        if leaves is None:
            leaves = per_log[company] = []
        leaves.append(leaf)
    return len(chunk)


def _checkpoints(seal: AuditSeal, per_log: dict[int, list[bytes]]) -> list[AuditCheckpoint]:
    logs = logs_for(per_log)
    latest = latest_checkpoints(log.pk for log in logs.values())
    made = []
    for company, leaves in sorted(per_log.items()):
        log = logs[company]
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
            leaf_hashes=b"".join(leaves),
        ))
    AuditCheckpoint.objects.bulk_create(made)
    return made


def audit_seal_pending(*, max_rounds: int = 100, sweep: bool = False) -> int:
    """Seal until nothing is waiting (or another sealer runs); returns the number sealed."""
    total = 0
    for round_ in range(max_rounds):
        result = audit_seal(sweep=sweep and round_ == 0)
        if result is None or result.sealed == 0:
            break
        total += result.sealed
    return total
