"""Verification of the stored logs (`verify_audit`) and of export files (`verify_audit_export`).

The stored logs, in one pass over the checkpoints (seal order) and one over the events:
- every log's checkpoints follow on from each other; the leaf hashes each one stored rebuild
  its signed root and frontier; each signature verifies under the keyring (current key or a
  retired one from AUDIT_VERIFY_KEYS, chosen by the checkpoint's key id);
- every event, walked in log order (`audit.membership`), hashes (recomputed from its fields,
  never taken from the stored `leaf_v2`) to the leaf its checkpoint sealed at its position;
  a log's events below its retention boundary may be gone, none above it;
- no event waits in a seal's gap longer than AUDIT_SEAL_GAP_TTL_S;
- the legacy single log and its signed link (`audit.legacy`).
"""

import bisect
import contextlib
import csv
import datetime
import hashlib
import io
import itertools
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from audit import conf, signing
from audit.canonical import FIELDS, event_leaf_hash, log_name, sql_leaf_hash, strings_from_values
from audit.legacy import verify_legacy
from audit.membership import Membership, existing_ids_in, membership, open_gaps
from audit.merkle import Frontier, fold, root_from_multiproof
from audit.models import AuditCheckpoint, AuditEvent, AuditLog, AuditPrune, AuditSeal

logger = logging.getLogger(__name__)
MAX_PROBLEMS = 50
PLATFORM_KEY = -1
_FETCH = 5000


@dataclass
class Report:
    ok: bool = True
    leaves: int = 0  # events checked against their sealed leaves
    checkpoints: int = 0
    logs: int = 0
    verified_seal: int = 0  # every seal up to this one proven good
    first_bad: dict[str, int] = field(default_factory=dict)  # log -> first bad position
    legacy_leaves: int = 0
    problems: list[str] = field(default_factory=list)
    _bad_seal: int | None = None
    _ranges: dict[str, int] = field(default_factory=dict)  # log -> start of a checkpoint found bad

    def fail_range(self, log: str, first_position: int, message: str, *, seal: int) -> None:
        """A checkpoint is bad: the change lies somewhere in its range (an event-level finding is
        more precise and wins, see `settle`)."""
        self.fail(None, message, seal=seal)
        self._ranges[log] = min(first_position, self._ranges.get(log, first_position))

    def settle(self) -> None:
        for log, position in self._ranges.items():
            self.first_bad.setdefault(log, position)

    def fail(self, where: tuple[str, int] | None, message: str, *, seal: int | None = None) -> None:
        self.ok = False
        if where is not None:
            log, position = where
            if log not in self.first_bad or position < self.first_bad[log]:
                self.first_bad[log] = position
        if seal is not None and (self._bad_seal is None or seal < self._bad_seal):
            self._bad_seal = seal
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)

    @property
    def first_bad_position(self) -> int | None:
        return min(self.first_bad.values()) if self.first_bad else None


def _events_in_order(plan: Membership, companies: list[int] | None):
    """(id, company key, recomputed leaf hash, seal of a late segment or None) in log order."""
    for segment in plan.segments:
        if connection.vendor == "postgresql":
            where, params = plan.sql_range(segment)
            if companies is not None:
                where += " AND coalesce(e.company_id, -1) = ANY(%s)"
                params = [*params, companies]
            sql = (f"SELECT e.id, coalesce(e.company_id, -1), {sql_leaf_hash('e')} FROM audit_event e "  # noqa: S608
                   f"WHERE {where} ORDER BY e.id")
            with connection.chunked_cursor() as cursor:
                cursor.execute(sql, params)
                while rows := cursor.fetchmany(_FETCH):
                    for event_id, company, leaf in rows:
                        yield event_id, company, bytes(leaf), segment.seal_id
        else:
            rows = AuditEvent.objects.filter(plan.q(segment)).order_by("id").values_list(*FIELDS)
            for values in rows.iterator(chunk_size=_FETCH):
                company = values[FIELDS.index("company_id")]
                key = PLATFORM_KEY if company is None else company
                if companies is None or key in companies:
                    yield values[0], key, event_leaf_hash(strings_from_values(values)), segment.seal_id


class _LogState:
    __slots__ = ("expected", "frontier", "name", "pruned_below")

    def __init__(self, name: str, pruned_below: int):
        self.name = name
        self.frontier = Frontier()
        self.pruned_below = pruned_below
        self.expected: list | None = None  # [checkpoint, leaf hashes, how many seen]


def check_logs(report: Report, *, after_seal: int = 0, through_seal: int | None = None,
               companies: list[int] | None = None, chains: bool = True,
               progress: Callable[[int], None] | None = None, progress_every: int = 100_000) -> None:
    """Check checkpoints (with `chains`, from each log's start) and events of seals (after, through]."""
    if through_seal is None:
        through_seal = AuditSeal.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    ring = signing.keyring()
    logs = AuditLog.objects.all()
    if companies is not None:
        logs = logs.filter(company_id__in=[c for c in companies if c != PLATFORM_KEY]) | (
            AuditLog.objects.filter(company_id__isnull=True) if PLATFORM_KEY in companies else AuditLog.objects.none())
    boundaries = {p.log_id: p.below_position for p in AuditPrune.objects.order_by("below_position")}
    states = {log.pk: _LogState(log.name, boundaries.get(log.pk, 0)) for log in logs}
    by_company = {PLATFORM_KEY if log.company_id is None else log.company_id: log.pk for log in logs}
    report.logs = len(states)
    plan = membership(after_seal=after_seal, through_seal=through_seal)
    seals = list(AuditSeal.objects.filter(pk__gt=after_seal, pk__lte=through_seal).order_by("pk")
                 .values_list("pk", "high_id"))
    highs = [high for _, high in seals]
    checkpoints = (AuditCheckpoint.objects.filter(seal_id__lte=through_seal, log_id__in=list(states))
                   .order_by("seal_id", "log_id"))
    if not chains:
        checkpoints = checkpoints.filter(seal_id__gt=after_seal)
    stream = checkpoints.iterator(chunk_size=200)
    pending = next(stream, None)
    current: int | None = None
    seen: dict[int, _LogState] = {}

    def finish(state: _LogState) -> None:
        cp, _leaves, count = state.expected
        missing = cp.tree_size - cp.first_position - count
        if missing and not (count == 0 and cp.tree_size <= state.pruned_below):
            position = cp.first_position + count
            report.fail((state.name, position), f"{state.name}: position {position}: event row missing "
                        f"(deleted; {missing} of checkpoint {cp.tree_size})", seal=cp.seal_id)
        state.expected = None

    def close() -> None:
        for state in seen.values():
            if state.expected is not None:
                finish(state)
        seen.clear()

    def open_seal(seal_id: int) -> None:
        nonlocal pending
        while pending is not None and pending.seal_id <= seal_id:
            cp, pending = pending, next(stream, None)
            state = states[cp.log_id]
            _check_checkpoint(report, ring, state, cp, chains)
            if cp.seal_id > after_seal:
                if state.expected is not None:  # an earlier seal none of whose events of this log came
                    finish(state)
                state.expected = [cp, bytes(cp.leaf_hashes), 0]
                seen[cp.log_id] = state

    for event_id, company, leaf, late_seal in _events_in_order(plan, companies):
        seal_id = late_seal or seals[bisect.bisect_left(highs, event_id)][0]
        if seal_id != current:
            close()
            open_seal(seal_id)
            current = seal_id
        state = states.get(by_company.get(company))
        if state is None or state.expected is None or state.expected[0].seal_id != seal_id:
            name = log_name(None if company == PLATFORM_KEY else company)
            report.fail((name, 0), f"{name}: event {event_id} is in seal {seal_id}, which sealed nothing of "
                        "this log (company changed?)", seal=seal_id)
            continue
        cp, leaves, count = state.expected
        position = cp.first_position + count
        if count >= cp.tree_size - cp.first_position:
            report.fail((state.name, position), f"{state.name}: event {event_id} is beyond checkpoint "
                        f"{cp.tree_size} (an event added to a sealed range)", seal=seal_id)
            continue
        if leaves[32 * count:32 * count + 32] != leaf:
            report.fail((state.name, position), f"{state.name}: position {position}: event {event_id} altered "
                        "(leaf hash differs), or an event before it deleted", seal=seal_id)
        state.expected[2] = count + 1
        report.leaves += 1
        if progress and report.leaves % progress_every == 0:
            progress(report.leaves)
    close()
    open_seal(through_seal)  # checkpoints of seals after the last event
    close()
    report.settle()
    bad = report._bad_seal
    report.verified_seal = through_seal if bad is None else max(bad - 1, 0)


def _check_checkpoint(report: Report, ring, state: _LogState, cp: AuditCheckpoint, chains: bool) -> None:
    report.checkpoints += 1
    label = f"{state.name}: checkpoint {cp.tree_size}"
    span = f"(a change in positions {cp.first_position}..{cp.tree_size - 1})"

    def fail(message: str) -> None:
        report.fail_range(state.name, cp.first_position, f"{label}: {message}", seal=cp.seal_id)

    problem = signing.verify_with(ring, cp.key_id, signing.checkpoint_message(
        state.name, cp.tree_size, cp.root_hash, cp.signed_at), cp.signature)
    if problem:
        fail(f"{problem} {span}")
    if not chains:
        return
    if cp.first_position != state.frontier.size:
        fail(f"starts at {cp.first_position}, the log had {state.frontier.size}")
        state.frontier = Frontier.from_hex(cp.tree_size, cp.frontier)
        return
    blob = bytes(cp.leaf_hashes)
    if len(blob) != 32 * (cp.tree_size - cp.first_position):
        fail(f"holds {len(blob) // 32} leaves for {cp.tree_size - cp.first_position} positions {span}")
    state.frontier.extend([blob[i:i + 32] for i in range(0, len(blob), 32)])
    if state.frontier.root().hex() != cp.root_hash:
        fail(f"root hash does not match the leaves {span}")
    if cp.frontier != state.frontier.to_hex():
        fail(f"stored frontier does not match the leaves {span}")
    with contextlib.suppress(ValueError):  # a malformed stored frontier is reported above: go on from the leaves
        state.frontier = Frontier.from_hex(cp.tree_size, cp.frontier)


def _check_stragglers(report: Report) -> None:
    cutoff = timezone.now() - datetime.timedelta(seconds=conf.seal_gap_ttl_s())
    ranges, late = open_gaps(since=None)
    young_ranges, _ = open_gaps(since=cutoff)
    young = set(existing_ids_in(young_ranges))
    for event_id in existing_ids_in(ranges):
        if event_id not in late and event_id not in young:
            report.fail(None, f"event {event_id} committed after its seal and was never sealed "
                        "(run `manage.py seal_audit --sweep`)")


def verify_log(*, progress: Callable[[int], None] | None = None, progress_every: int = 100_000) -> Report:
    """Verify everything (see the module docstring). Never raises on bad data: reports it."""
    report = Report()
    with transaction.atomic():
        check_logs(report, progress=progress, progress_every=progress_every)
        _check_stragglers(report)
        verify_legacy(report, signing.keyring())
    return report


# --- export files ----------------------------------------------------------------------------

EXPORT_FORMAT = "smarthome-audit-export/v2"
CSV_TRAILER_MARK = "#proof"


@dataclass
class ExportReport:
    ok: bool
    sealed_rows: int = 0
    unsealed_rows: int = 0
    logs: int = 0
    filtered: bool = False
    problems: list[str] = field(default_factory=list)


def read_export(lines: Iterable[str]) -> tuple[list[list[str]], dict]:
    """(rows as FIELDS strings, trailer) from an export file's text lines."""
    lines = iter(lines)
    first = next(lines, "")
    rows: list[list[str]] = []
    trailer = None
    if first.startswith("id,"):
        if first.strip().split(",") != list(FIELDS):
            raise ValueError("unexpected CSV header")
        for cells in csv.reader(lines):
            if cells and cells[0] == CSV_TRAILER_MARK:
                trailer = json.loads(cells[1])
            elif cells:
                rows.append(cells)
    else:
        for line in itertools.chain([first], lines):
            if not line.strip():
                continue
            obj = json.loads(line)
            if "format" in obj:
                trailer = obj
            else:
                rows.append([obj[name] for name in FIELDS])
    if trailer is None:
        raise ValueError("no trailer: the file is truncated")
    return rows, trailer


def expand_runs(runs) -> list[int]:
    return [p for start, length in runs for p in range(start, start + length)]


def verify_export(text: str | Iterable[str], public_key_pem: str | bytes | None = None) -> ExportReport:
    """Check an export file offline: the signed statement says which rows of which logs the file
    holds; the rows must be exactly those, and hash with the proofs to the signed checkpoints."""
    ring = ({signing.key_id(k): k for k in signing.parse_public_keys(
        public_key_pem.decode() if isinstance(public_key_pem, bytes) else public_key_pem)}
        if public_key_pem else signing.keyring())
    lines = io.StringIO(text) if isinstance(text, str) else text
    try:
        rows, trailer = read_export(lines)
    except (ValueError, KeyError, IndexError, json.JSONDecodeError) as exc:
        return ExportReport(False, problems=[f"unreadable export: {exc}"])
    report = ExportReport(True)
    try:
        _check_export(report, rows, trailer, ring)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        report.problems.append(f"malformed trailer: {type(exc).__name__}: {exc}")
    report.ok = not report.problems
    return report


def _check_export(report: ExportReport, rows, trailer, ring) -> None:
    problems = report.problems
    statement = trailer["statement"]
    if trailer.get("format") != EXPORT_FORMAT or statement.get("format") != EXPORT_FORMAT:
        problems.append(f"not a {EXPORT_FORMAT} file (older exports prove no completeness: export again)")
        return
    signature = trailer["signature"]
    problem = signing.verify_with(ring, signature["key_id"], signing.statement_message(EXPORT_FORMAT, statement),
                                  signature["value"])
    if problem:
        problems.append(f"export statement: {problem} (the statement or the trailer was changed)")
        return
    report.filtered = bool(statement["filtered"])
    for log, position in (statement.get("missing") or {}).items():
        problems.append(f"{log}: event rows deleted from the log at position {position}")
    unsealed = statement["unsealed"]
    report.unsealed_rows = len(rows) - statement_rows(statement) if len(rows) >= statement_rows(statement) else 0
    expected_total = statement_rows(statement) + unsealed["rows"]
    if len(rows) != expected_total:
        problems.append(f"the file holds {len(rows)} rows, the signed statement {expected_total} (rows added or "
                        "removed)")
        return
    sealed_rows, unsealed_rows = rows[:statement_rows(statement)], rows[statement_rows(statement):]
    digest = hashlib.sha256(b"".join(event_leaf_hash(r) for r in unsealed_rows)).hexdigest()
    if digest != unsealed["leaves_sha256"]:
        problems.append("the unsealed rows differ from the signed statement")
    groups: dict[str, list] = {}
    for row in sealed_rows:
        groups.setdefault(log_name(row[FIELDS.index("company_id")]), []).append(row)
    for entry in statement["logs"]:
        _check_log(report, entry, groups.pop(entry["log"], []), trailer["proofs"].get(entry["log"], []), ring)
    for log in groups:
        problems.append(f"rows of {log}, which the signed statement does not list")
    report.sealed_rows = len(sealed_rows)
    report.logs = len(statement["logs"])


def statement_rows(statement) -> int:
    return sum(entry["rows"] for entry in statement["logs"])


def _check_log(report: ExportReport, entry: dict, rows: list, proof_hex: list, ring) -> None:
    problems = report.problems
    log, first, end, start = entry["log"], entry["first"], entry["end"], entry.get("start")
    if len(rows) != entry["rows"]:
        problems.append(f"{log}: {len(rows)} rows, the signed statement says {entry['rows']} (rows added or removed)")
        return
    for name, cp in (("end", end), ("start", start)):
        if cp is None:
            continue
        message = signing.checkpoint_message(log, cp["tree_size"], cp["root_hash"], cp["signed_at"])
        problem = signing.verify_with(ring, cp["key_id"], message, cp["signature"])
        if problem or cp.get("log") != log:
            problems.append(f"{log}: {name} checkpoint {cp['tree_size']}: {problem or 'of another log'}")
    size = end["tree_size"]
    if entry.get("positions") is not None:
        positions = expand_runs(entry["positions"])
        if len(positions) != len(rows) or positions != sorted(set(positions)) or (positions and (
                positions[0] < first or positions[-1] >= size)):
            problems.append(f"{log}: the signed positions do not fit the rows or the range")
            return
    else:
        positions = list(range(first, first + len(rows)))
        if first + len(rows) != size:
            problems.append(f"{log}: rows {first}..{first + len(rows) - 1} do not reach checkpoint {size} "
                            "(rows missing)")
            return
    if start is not None and start["tree_size"] != first:
        problems.append(f"{log}: the rows start at {first}, the start checkpoint is {start['tree_size']}")
    proof = [bytes.fromhex(h) for h in proof_hex]
    leaves = [event_leaf_hash(row) for row in rows]
    hashes = iter(proof)
    try:
        computed = root_from_multiproof(size, positions, leaves, hashes)
        extra = next(hashes, None) is not None
    except StopIteration:
        computed, extra = None, False
    if computed is None or computed.hex() != end["root_hash"] or extra:
        problems.append(f"{log}: rows do not hash to the signed checkpoint {size} (a row altered, removed, "
                        "added, repeated or moved)")
    elif start is not None and entry.get("positions") is None and fold(proof).hex() != start["root_hash"]:
        problems.append(f"{log}: the proof does not lead to the start checkpoint {first}")
