"""Sealing: committed, unsealed events get leaf positions and a new signed checkpoint.

One sealer at a time (a transaction-scoped advisory lock on PostgreSQL; SQLite serialises
writers itself). Events are taken as "no leaf yet, in id order" — never "id above the last
sealed id" — so an event whose transaction committed after a higher id was sealed is picked
up by the next seal, exactly once (the leaf's unique event id guards that too).
Event rows are never updated: positions and hashes go to `AuditLeaf`.
"""

import logging
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from audit import conf, signing
from audit.canonical import FIELDS, event_leaf_hash, sql_columns, strings_from_values
from audit.merkle import Frontier
from audit.models import AuditCheckpoint, AuditEvent, AuditLeaf

logger = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x61756469_7365616C  # "audiseal"
_FETCH = 5000


class SealError(Exception):
    """The stored tree is not in the state the last checkpoint describes."""


@dataclass(frozen=True)
class SealResult:
    sealed: int
    checkpoint: AuditCheckpoint | None


# S608 noqa below: the SQL is built from constant column expressions (and a Django-compiled
# filter); every value travels as a parameter.
def _unsealed_pg(limit: int):
    """(event id, canonical strings) of unsealed events, oldest id first, via a server-side cursor."""
    sql = (
        f"SELECT e.id, {sql_columns('e')} FROM audit_event e "  # noqa: S608
        "WHERE NOT EXISTS (SELECT 1 FROM audit_leaf l WHERE l.event_id = e.id) ORDER BY e.id LIMIT %s"
    )
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, [limit])
        while rows := cursor.fetchmany(_FETCH):
            for row in rows:
                yield row[0], row[1:]


def _unsealed_orm(limit: int):
    rows = AuditEvent.objects.filter(leaf__isnull=True).order_by("id").values_list(*FIELDS)[:limit]
    for values in rows.iterator(chunk_size=_FETCH):
        yield values[0], strings_from_values(values)


def _write_leaves(leaves: list[tuple[int, int, bytes]]) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor, cursor.copy(
            "COPY audit_leaf (position, event_id, leaf_hash) FROM STDIN"
        ) as copy:
            for row in leaves:
                copy.write_row(row)
    else:
        AuditLeaf.objects.bulk_create(
            [AuditLeaf(position=p, event_id=e, leaf_hash=h) for p, e, h in leaves], batch_size=2000
        )


def _lock() -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def audit_seal(*, max_events: int | None = None) -> SealResult | None:
    """Seal up to `max_events` (AUDIT_SEAL_BATCH) committed unsealed events into one checkpoint.

    Returns None when another sealer holds the lock, SealResult(0, None) when nothing was
    waiting. Raises SealError if leaves exist beyond the latest checkpoint (a crashed or
    foreign writer) — sealing stops rather than sign over an unknown state.
    Seals are not themselves audit events (they would feed the next seal forever): the
    signed checkpoint row is their record.
    """
    limit = max_events or conf.seal_batch()
    with transaction.atomic():
        if not _lock():
            return None
        latest = AuditCheckpoint.objects.order_by("-tree_size").first()
        frontier = Frontier.from_hex(latest.tree_size, latest.frontier) if latest else Frontier()
        if AuditLeaf.objects.filter(position__gte=frontier.size).exists():
            raise SealError(f"leaves found beyond the latest checkpoint (size {frontier.size})")
        rows = _unsealed_pg(limit) if connection.vendor == "postgresql" else _unsealed_orm(limit)
        leaves = []
        for event_id, strings in rows:
            leaf = event_leaf_hash(strings)
            leaves.append((frontier.size, event_id, leaf))
            frontier.append(leaf)
        if not leaves:
            return SealResult(0, None)
        _write_leaves(leaves)
        root_hex = frontier.root().hex()
        signed_at = timezone.now()
        key_id, signature = signing.sign(signing.checkpoint_message(frontier.size, root_hex, signed_at))
        checkpoint = AuditCheckpoint.objects.create(
            tree_size=frontier.size,
            root_hash=root_hex,
            signed_at=signed_at,
            key_id=key_id,
            signature=signature,
            frontier=frontier.to_hex(),
        )
    logger.info("audit log sealed", extra={"sealed": len(leaves), "tree_size": checkpoint.tree_size})
    return SealResult(len(leaves), checkpoint)


def audit_seal_pending(*, max_rounds: int = 100) -> int:
    """Seal until nothing is waiting (or another sealer runs); returns the number sealed."""
    total = 0
    for _ in range(max_rounds):
        result = audit_seal()
        if result is None or result.sealed == 0:
            break
        total += result.sealed
    return total
