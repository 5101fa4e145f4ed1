"""Verification of the stored log (`verify_audit`) and of export files (`verify_audit_export`).

The stored log: every leaf is recomputed from its event row and compared with the stored
hash; the roots of all checkpoints are recomputed from that one leaf sequence (so each
checkpoint is a prefix of the next: the consistency a RFC 9162 consistency proof would show,
checked directly) and their signatures and frontiers checked. A missing event is accepted
only below the retention-pruning boundary, where the stored leaf hash stands in for it.
"""

import csv
import io
import itertools
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from audit import signing
from audit.actions import Action, Outcome
from audit.canonical import FIELDS, event_leaf_hash
from audit.merkle import Frontier, root_from_multiproof
from audit.models import AuditCheckpoint
from audit.selectors import leaf_rows, prune_boundary
from audit.services import record

logger = logging.getLogger(__name__)
MAX_PROBLEMS = 50


@dataclass
class Report:
    ok: bool = True
    leaves: int = 0
    checkpoints: int = 0
    verified_size: int = 0  # the largest checkpoint proven good, with all before it
    first_bad_position: int | None = None
    problems: list[str] = field(default_factory=list)

    def fail(self, position: int | None, message: str) -> None:
        self.ok = False
        if position is not None and (self.first_bad_position is None or position < self.first_bad_position):
            self.first_bad_position = position
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)


def _checkpoint_ok(checkpoint: AuditCheckpoint, frontier: Frontier, key, key_id: str) -> list[str]:
    problems = []
    if frontier.root().hex() != checkpoint.root_hash:
        problems.append("root hash does not match the leaves")
    if checkpoint.frontier != frontier.to_hex():
        problems.append("stored frontier does not match the leaves")
    if checkpoint.key_id != key_id:
        problems.append(f"signed by unknown key {checkpoint.key_id[:16]}")
    message = signing.checkpoint_message(checkpoint.tree_size, checkpoint.root_hash, checkpoint.signed_at)
    if not signing.verify(message, checkpoint.signature, key):
        problems.append("signature invalid")
    return problems


def verify_log(*, progress: Callable[[int], None] | None = None, progress_every: int = 100_000) -> Report:
    """Recompute the whole log; see the module docstring. Never raises on bad data: reports it."""
    report = Report()
    key = signing.public_key()
    key_id = signing.key_id(key)
    checkpoints = list(AuditCheckpoint.objects.order_by("tree_size"))
    pruned_below = prune_boundary()
    frontier = Frontier()
    index = 0
    previous_size = 0

    def check_due() -> None:
        nonlocal index, previous_size
        while index < len(checkpoints) and checkpoints[index].tree_size == frontier.size:
            checkpoint = checkpoints[index]
            problems = _checkpoint_ok(checkpoint, frontier, key, key_id)
            # a leaf found bad in this range is more precise than the range itself
            position = previous_size if report.first_bad_position is None else None
            for problem in problems:
                report.fail(position, f"checkpoint {checkpoint.tree_size}: {problem} "
                                           f"(a change in positions {previous_size}..{checkpoint.tree_size - 1})")
            if report.ok:
                report.verified_size = checkpoint.tree_size
            report.checkpoints += 1
            previous_size = checkpoint.tree_size
            index += 1

    for position, stored, strings in leaf_rows():
        if position != frontier.size:
            report.fail(frontier.size, f"position {frontier.size}: leaf missing (next stored is {position})")
            break
        if strings is None:
            if position >= pruned_below:
                report.fail(position, f"position {position}: event row deleted")
            leaf = stored
        else:
            leaf = event_leaf_hash(strings)
            if leaf != stored:
                report.fail(position, f"position {position}: event {strings[0]} altered (leaf hash differs)")
        frontier.append(leaf)
        report.leaves += 1
        if progress and report.leaves % progress_every == 0:
            progress(report.leaves)
        check_due()
    if index < len(checkpoints):
        report.fail(frontier.size, f"checkpoint {checkpoints[index].tree_size} covers leaves that do not exist "
                                   f"(only {frontier.size})")
    return report


def audit_verify(*, progress=None) -> Report:
    """Run `verify_log` and record `audit.verified` (success with the verified size, or failure)."""
    report = verify_log(progress=progress)
    record(
        action=Action.AUDIT_VERIFIED,
        outcome=Outcome.SUCCESS if report.ok else Outcome.FAILURE,
        object_type="audit_checkpoint",
        object_ref=f"size:{report.verified_size}",
        reason="" if report.ok else "tamper_detected",
    )
    if not report.ok:
        logger.error("audit log verification failed", extra={"first_bad_position": report.first_bad_position})
    return report


# --- export files ----------------------------------------------------------------------------


@dataclass
class ExportReport:
    ok: bool
    sealed_rows: int = 0
    unsealed_rows: int = 0
    tree_size: int = 0
    problems: list[str] = field(default_factory=list)


def _parse_export(lines: Iterable[str]) -> tuple[list[list[str]], dict]:
    """(rows as [position, *FIELDS] strings, trailer) from an export file's text lines."""
    lines = iter(lines)
    first = next(lines, "")
    rows: list[list[str]] = []
    trailer = None
    if first.startswith("position,"):
        for record_ in csv.reader(lines):
            if record_ and record_[0] == "#proof":
                trailer = json.loads(record_[1])
            elif record_:
                rows.append(record_)
        if first.strip().split(",") != ["position", *FIELDS]:
            raise ValueError("unexpected CSV header")
    else:
        for line in itertools.chain([first], lines):
            if not line.strip():
                continue
            obj = json.loads(line)
            if "format" in obj:
                trailer = obj
            else:
                rows.append([obj["position"], *(obj[name] for name in FIELDS)])
    if trailer is None:
        raise ValueError("no trailer: the file is truncated")
    return rows, trailer


def verify_export(text: str | Iterable[str], public_key_pem: str | bytes | None = None) -> ExportReport:
    """Check an export file offline: signature, every sealed row's leaf in the signed tree."""
    key = signing.load_public_key_pem(public_key_pem) if public_key_pem else signing.public_key()
    lines = io.StringIO(text) if isinstance(text, str) else text
    try:
        rows, trailer = _parse_export(lines)
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        return ExportReport(False, problems=[f"unreadable export: {exc}"])
    report = ExportReport(True)
    checkpoint = trailer.get("checkpoint")
    positions, leaves = [], []
    for row in rows:
        if row[0] == "":
            report.unsealed_rows += 1
            continue
        if report.unsealed_rows:
            report.problems.append("a sealed row follows the unsealed ones")
        position = int(row[0])
        if positions and position <= positions[-1]:
            report.problems.append(f"position {position} out of order")
        positions.append(position)
        leaves.append(event_leaf_hash(row[1:]))
    report.sealed_rows = len(positions)
    if trailer.get("missing_rows"):
        report.problems.append(f"event rows deleted from the log at positions {trailer['missing_rows'][:20]}")
    if trailer.get("rows", {}).get("sealed") != len(positions):
        report.problems.append("row count differs from the trailer (rows added or removed)")
    if checkpoint is None:
        if positions:
            report.problems.append("sealed rows without a checkpoint")
    else:
        size, root_hex = int(checkpoint["tree_size"]), checkpoint["root_hash"]
        report.tree_size = size
        message = signing.checkpoint_message(size, root_hex, checkpoint["signed_at"])
        if checkpoint.get("key_id") != signing.key_id(key):
            report.problems.append("checkpoint signed by another key")
        if not signing.verify(message, checkpoint["signature"], key):
            report.problems.append("checkpoint signature invalid (forged or altered checkpoint)")
        if positions and positions[-1] >= size:
            report.problems.append("a row lies beyond the checkpoint")
        hashes = iter(bytes.fromhex(h) for h in trailer["proof"]["hashes"])
        try:
            computed = root_from_multiproof(size, positions, leaves, hashes)
            if next(hashes, None) is not None:
                report.problems.append("proof longer than needed")
        except (StopIteration, IndexError, ValueError):
            computed = None
        if computed is None or computed.hex() != root_hex:
            report.problems.append("rows do not hash to the signed root (a row altered, removed or reordered)")
    report.ok = not report.problems
    return report
