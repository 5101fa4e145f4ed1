"""The single log that came before per-company logs, and the signed link from it.

Before per-company logs, every event went into one Merkle tree (`LegacyLeaf`, v1 leaves) with
checkpoints signed without a log name (`LegacyCheckpoint`). That history stays as it was,
read-only. After the upgrade, the first seals take every event up to the highest id the legacy
log had sealed (in id order, into each event's own log, like any other seal) and then write
one `AuditLogLink`: a statement, signed, naming the legacy log's last checkpoint and, for each
log, the checkpoint that then held its share. `verify_audit` checks the link both ways: the
legacy tree still hashes to its signed checkpoints, and every event it sealed that still exists
is a member of a seal up to the link's (so it is in some log, under a signed checkpoint).
"""

from contextlib import closing

from django.db import connection
from django.db.models import Max

from audit import signing
from audit.canonical import FIELDS, LEGACY_FIELDS, format_time, legacy_leaf_hash, sql_column_exprs, strings_from_values
from audit.membership import existing_ids_in
from audit.merkle import Frontier
from audit.models import (
    AuditCheckpoint,
    AuditEvent,
    AuditLog,
    AuditLogLink,
    AuditSeal,
    LegacyCheckpoint,
    LegacyLeaf,
    LegacyPrune,
)

LINK_PREFIX = "smarthome-audit-link/v1"
_CHUNK = 5000


def legacy_link_pending() -> int | None:
    """The highest event id the legacy log sealed, while its link is not written yet; else None."""
    if AuditLogLink.objects.exists():
        return None
    last = LegacyCheckpoint.objects.order_by("-tree_size").first()
    if last is None:
        return None
    bound = LegacyLeaf.objects.filter(position__lt=last.tree_size).aggregate(m=Max("event_id"))["m"]
    return bound or 0


def legacy_link_write(*, seal: AuditSeal | None) -> AuditLogLink:
    """Sign and store the link (inside the seal's transaction; see the module docstring)."""
    bound = legacy_link_pending() or 0
    if seal is None or seal.high_id < bound:  # the legacy events are all gone (retention): an empty seal
        low = seal.high_id if seal else 0
        seal = AuditSeal.objects.create(low_id=low, high_id=max(bound, low),
                                        gaps=[[low + 1, bound]] if bound > low else [], events=0)
    last = LegacyCheckpoint.objects.order_by("-tree_size").first()
    pruned = legacy_prune_boundary()
    statement = {
        "legacy": {"tree_size": last.tree_size, "root_hash": last.root_hash, "signed_at": format_time(last.signed_at),
                   "key_id": last.key_id, "signature": last.signature, "pruned_below": pruned},
        "seal": seal.pk,
        "through_event_id": bound,
        "logs": link_logs(seal.pk),
    }
    key_id, signature = signing.sign(signing.statement_message(LINK_PREFIX, statement))
    return AuditLogLink.objects.create(seal=seal, statement=statement, signed_at=seal.sealed_at, key_id=key_id,
                                       signature=signature)


def link_logs(seal_id: int) -> list[dict]:
    """Each log's latest checkpoint at seal `seal_id`: [{log, tree_size, root_hash}] by log name."""
    out = []
    for log in AuditLog.objects.order_by("name"):
        cp = (AuditCheckpoint.objects.filter(log=log, seal_id__lte=seal_id).order_by("-tree_size")
              .only("tree_size", "root_hash").first())
        if cp is not None:
            out.append({"log": log.name, "tree_size": cp.tree_size, "root_hash": cp.root_hash})
    return out


def legacy_prune_boundary() -> int:
    prune = LegacyPrune.objects.order_by("-below_position").first()
    return prune.below_position if prune else 0


def _legacy_rows():
    """(position, stored leaf, v1 strings or None when the event row is gone), in position order."""
    if connection.vendor == "postgresql":
        columns = ", ".join(sql_column_exprs("e")[:len(LEGACY_FIELDS)])
        sql = (f"SELECT l.position, l.leaf_hash, e.id IS NOT NULL, {columns} FROM audit_leaf l "  # noqa: S608
               "LEFT JOIN audit_event e ON e.id = l.event_id ORDER BY l.position")
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql)
            while rows := cursor.fetchmany(_CHUNK):
                for row in rows:
                    yield row[0], bytes(row[1]), (tuple(row[3:]) if row[2] else None)
        return
    leaves = LegacyLeaf.objects.order_by("position").values_list("position", "leaf_hash", "event_id")
    batch: list = []
    for row in leaves.iterator(chunk_size=_CHUNK):
        batch.append(row)
        if len(batch) >= _CHUNK:
            yield from _with_events(batch)
            batch = []
    yield from _with_events(batch)


def _with_events(batch):
    ids = [event_id for _, _, event_id in batch]
    events = {v[0]: v for v in AuditEvent.objects.filter(id__in=ids).values_list(*FIELDS)}
    for position, leaf, event_id in batch:
        values = events.get(event_id)
        yield position, bytes(leaf), (strings_from_values(values)[:len(LEGACY_FIELDS)] if values else None)


def verify_legacy(report, ring) -> None:
    """Check the legacy log and the link into report (`audit.verification.Report`).

    The legacy tree is rebuilt from its stored leaves and each checkpoint's root, frontier and
    v1 signature checked; every event still present must hash to its stored v1 leaf. (Events
    deleted since live on in their own log, which verifies them: a legacy leaf alone is not
    flagged.) Then the link, if written: signature, both ends, and membership.
    """
    checkpoints = list(LegacyCheckpoint.objects.order_by("tree_size"))
    if not checkpoints:
        return
    frontier = Frontier()
    with closing(_legacy_rows()) as rows:
        complete = _walk_legacy(report, ring, rows, frontier, checkpoints)
    if not complete:
        return
    report.legacy_leaves = frontier.size
    _verify_link(report, ring, checkpoints[-1])


def _walk_legacy(report, ring, rows, frontier: Frontier, checkpoints: list[LegacyCheckpoint]) -> bool:
    index = 0
    for position, stored, strings in rows:
        if position != frontier.size:
            report.fail(None, f"legacy log: position {frontier.size}: leaf missing (next stored is {position})")
            return False
        if strings is not None and legacy_leaf_hash(strings) != stored:
            report.fail(None, f"legacy log: position {position}: event {strings[0]} altered (leaf hash differs)")
        frontier.append(stored)
        while index < len(checkpoints) and checkpoints[index].tree_size == frontier.size:
            cp = checkpoints[index]
            if frontier.root().hex() != cp.root_hash:
                report.fail(None, f"legacy log: checkpoint {cp.tree_size}: root hash does not match the leaves")
            problem = signing.verify_with(ring, cp.key_id, signing.legacy_checkpoint_message(
                cp.tree_size, cp.root_hash, cp.signed_at), cp.signature)
            if problem:
                report.fail(None, f"legacy log: checkpoint {cp.tree_size}: {problem}")
            index += 1
    if index < len(checkpoints):
        report.fail(None, f"legacy log: checkpoint {checkpoints[index].tree_size} covers leaves that do not exist")
    return True


def _verify_link(report, ring, last: LegacyCheckpoint) -> None:
    link = AuditLogLink.objects.select_related("seal").first()
    if link is None:
        report.fail(None, "legacy log: not linked to the per-company logs yet (run seal_audit)")
        return
    statement = link.statement
    problem = signing.verify_with(ring, link.key_id, signing.statement_message(LINK_PREFIX, statement), link.signature)
    if problem:
        report.fail(None, f"legacy link: {problem}")
    legacy = statement.get("legacy", {})
    if (legacy.get("tree_size"), legacy.get("root_hash")) != (last.tree_size, last.root_hash):
        report.fail(None, "legacy link: does not name the legacy log's last checkpoint")
    if statement.get("logs") != link_logs(link.seal_id):
        report.fail(None, "legacy link: its logs' checkpoints differ from the stored ones")
    bound = statement.get("through_event_id", 0)
    sealed_ids = LegacyLeaf.objects.filter(position__lt=last.tree_size).values_list("event_id", flat=True)
    beyond = AuditEvent.objects.filter(id__in=sealed_ids, id__gt=min(bound, link.seal.high_id)).count()
    gaps = [(a, b) for seal_gaps in AuditSeal.objects.filter(pk__lte=link.seal_id).exclude(gaps=[])
            .values_list("gaps", flat=True) for a, b in seal_gaps]
    in_gaps = set(existing_ids_in(gaps)) & set(sealed_ids)
    if beyond or in_gaps:
        report.fail(None, f"legacy link: {beyond + len(in_gaps)} events of the legacy log are in no log")
