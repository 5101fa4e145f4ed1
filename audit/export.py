"""Compliance export: streamed CSV or JSON Lines ending with a signed statement and the proofs.

What an export is: for every log the caller may see (one per management company, plus the
platform log for those who see everything), the events sealed by the seals (a, b] - where a is
the last seal at or before the window's start and b the first seal at or after its end plus
AUDIT_EXPORT_GRACE_S (or the latest). That is a contiguous range of each log, positions
`first`..`end.tree_size - 1`, between two signed checkpoints. Filtered further (building,
partner, action, outcome), it is a subset of those ranges whose positions the statement lists.

File layout (both formats carry the canonical strings, see `audit.canonical`):
- CSV: a header row `id,occurred_at,...`; one row per event; a last row whose first cell is
  `#proof` and whose second cell is the trailer JSON document.
- JSONL: one object per event `{"id":"...",...}`; a last line, the trailer.
Rows come in log order (logs interleaved; a row's log is given by its company_id), then the
rows not sealed yet (only when the window reaches the present; not proven).

The trailer holds `statement` - signed with the audit key: per log its name, `first`
position, number of rows, start and end checkpoints (each signed at its seal), and for a
filtered export the positions; the number and a digest of the unsealed rows; the request -
and `proofs`: per log the RFC 9162 multiproof of its rows in the end checkpoint's tree (for a
complete range, the frontier of the first `first` leaves, which also rebuilds the start
checkpoint's root). A verifier rejects any file whose rows are not exactly what the statement
says: a row dropped, added, repeated, moved or altered, even with the proof rebuilt.

On PostgreSQL the rows stream straight out of `COPY (SELECT ...) TO STDOUT`, one ordered scan
per range (the canonical strings are computed in SQL); elsewhere through the ORM. Memory stays
flat either way.
"""

import csv
import datetime
import hashlib
import io
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone

from audit import conf, signing
from audit.canonical import (
    FIELDS,
    event_leaf_hash,
    format_time,
    jsonl_row,
    sql_columns,
    sql_jsonl_row,
    strings_from_values,
)
from audit.membership import Membership, existing_ids_in, membership, open_gaps
from audit.merkle import Frontier, PositionRuns, multiproof
from audit.models import AuditCheckpoint, AuditEvent, AuditLog, AuditSeal
from audit.selectors import (
    EventFilter,
    checkpoint_at_seal,
    checkpoint_of_size,
    leaf_hashes,
    logs_for_companies,
    prune_boundary,
)
from audit.verification import CSV_TRAILER_MARK, EXPORT_FORMAT, Report, check_logs

FORMAT = EXPORT_FORMAT
COLUMNS = FIELDS
PUBLIC_KEY_PATH = "/api/v1/audit/public-key"
LEAF_RULE = 'SHA-256(0x00 || compact ASCII JSON ["v2", id, occurred_at, ..., origin_request_id] as strings)'
_CHUNK = 2000
_CHUNK_BYTES = 256 * 1024


@dataclass
class LogRange:
    log: AuditLog
    first: int
    start: AuditCheckpoint | None
    end: AuditCheckpoint
    positions: list[int] = field(default_factory=list)  # filtered exports only

    @property
    def key(self) -> int:
        return -1 if self.log.company_id is None else self.log.company_id


@dataclass
class ExportPlan:
    event_filter: EventFilter
    after_seal: int
    through_seal: int
    logs: list[LogRange]
    unsealed: bool  # the window reaches the present: append the rows not sealed yet

    @property
    def filtered(self) -> bool:
        return self.event_filter.is_filtered()


def _seal_window(event_filter: EventFilter) -> tuple[int, int, bool]:
    latest = AuditSeal.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    after = 0
    if event_filter.since is not None:
        after = (AuditSeal.objects.filter(sealed_at__lte=event_filter.since).order_by("-pk")
                 .values_list("pk", flat=True).first() or 0)
    through, reaches_now = latest, True
    if event_filter.until is not None:
        end = event_filter.until + datetime.timedelta(seconds=conf.export_grace_s())
        through = (AuditSeal.objects.filter(sealed_at__gte=end).order_by("pk").values_list("pk", flat=True).first()
                   or latest)
        reaches_now = end > timezone.now()
    return after, max(through, after), reaches_now and through == latest


def export_plan(event_filter: EventFilter) -> ExportPlan:
    """Which range of which log an export of `event_filter` covers (see the module docstring)."""
    after, through, unsealed = _seal_window(event_filter)
    ranges = []
    for log in logs_for_companies(event_filter.company_ids):
        end = checkpoint_at_seal(log_id=log.pk, seal_id=through)
        if end is None:
            continue
        start = checkpoint_at_seal(log_id=log.pk, seal_id=after)
        first = start.tree_size if start else 0
        boundary = prune_boundary(log.pk)
        if boundary > first:
            start, first = checkpoint_of_size(log_id=log.pk, tree_size=boundary), boundary
        ranges.append(LogRange(log=log, first=first, start=start, end=end))
    return ExportPlan(event_filter, after, through, ranges, unsealed)


# --- rows ------------------------------------------------------------------------------------


def _company_sql(plan: ExportPlan) -> tuple[str, list]:
    if plan.event_filter.company_ids is None:
        return "", []
    companies = [r.log.company_id for r in plan.logs if r.log.company_id is not None]
    return " AND e.company_id = ANY(%s)", [companies]


def _company_q(plan: ExportPlan) -> Q:
    if plan.event_filter.company_ids is None:
        return Q()
    return Q(company_id__in=[r.log.company_id for r in plan.logs if r.log.company_id is not None])


def _row_sql(event_filter: EventFilter) -> tuple[str, list]:
    criteria = event_filter.row_criteria()
    return "".join(f" AND e.{column} = %s" for column in criteria), list(criteria.values())


class _Counter:
    rows = 0


def _pg_rows(plan: ExportPlan, members: Membership, fmt: str, counter: _Counter) -> Iterator[bytes]:
    select = sql_columns("e") if fmt == "csv" else sql_jsonl_row("e")
    options = "(FORMAT csv)" if fmt == "csv" else "(FORMAT text)"
    company, company_params = _company_sql(plan)
    rows, row_params = _row_sql(plan.event_filter)
    for segment in members.segments:
        where, params = members.sql_range(segment)
        sql = (f"COPY (SELECT {select} FROM audit_event e WHERE {where}{company}{rows} ORDER BY e.id) "  # noqa: S608
               f"TO STDOUT {options}")
        with connection.cursor() as cursor, cursor.copy(sql, [*params, *company_params, *row_params]) as copy:
            # COPY hands over one row at a time: pass them on in chunks of about _CHUNK_BYTES
            parts, size = [], 0
            for block in copy:
                parts.append(block)
                size += len(block)
                if size >= _CHUNK_BYTES:
                    yield _counted(parts, counter)
                    parts, size = [], 0
            if parts:
                yield _counted(parts, counter)


def _counted(parts: list, counter: _Counter) -> bytes:
    chunk = b"".join(parts)
    counter.rows += chunk.count(b"\n")
    return chunk


def _render(strings, fmt: str, buffer: io.StringIO, writer) -> None:
    if fmt == "csv":
        writer.writerow(strings)
    else:
        buffer.write(jsonl_row(strings) + "\n")


def _orm_rows(plan: ExportPlan, members: Membership, fmt: str, counter: _Counter) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    q = _company_q(plan) & plan.event_filter.row_q()
    for segment in members.segments:
        rows = AuditEvent.objects.filter(members.q(segment) & q).order_by("id").values_list(*FIELDS)
        for values in rows.iterator(chunk_size=_CHUNK):
            _render(strings_from_values(values), fmt, buffer, writer)
            counter.rows += 1
            if counter.rows % _CHUNK == 0:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode()


def _unsealed_rows(plan: ExportPlan, fmt: str) -> tuple[bytes, dict]:
    """The rows not sealed yet (in the caller's logs, matching the filter), and their signed summary."""
    last = AuditSeal.objects.order_by("-pk").values_list("high_id", flat=True).first() or 0
    ranges, late = open_gaps(since=None)
    waiting = [i for i in existing_ids_in(ranges) if i not in late]
    q = (Q(id__gt=last) | Q(id__in=waiting)) & plan.event_filter.row_q()
    if plan.event_filter.company_ids is not None:
        q &= Q(company_id__in=sorted(plan.event_filter.company_ids))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    digest = hashlib.sha256()
    count = 0
    for values in AuditEvent.objects.filter(q).order_by("id").values_list(*FIELDS).iterator(chunk_size=_CHUNK):
        strings = strings_from_values(values)
        _render(strings, fmt, buffer, writer)
        digest.update(event_leaf_hash(strings))
        count += 1
    return buffer.getvalue().encode(), {"rows": count, "leaves_sha256": digest.hexdigest()}


# --- positions and proofs --------------------------------------------------------------------


def _filtered_positions(plan: ExportPlan, members: Membership) -> dict[int, int]:
    """Fill each range's `positions` (the matching rows'); -> log key -> rows of the range seen."""
    cursor_of = {r.key: r for r in plan.logs}
    seen = {r.key: 0 for r in plan.logs}
    match = ExpressionWrapper(plan.event_filter.row_q(), output_field=BooleanField())
    for segment in members.segments:
        rows = (AuditEvent.objects.filter(members.q(segment) & _company_q(plan)).order_by("id")
                .annotate(match=match).values_list("company_id", "match"))
        for company, matched in rows.iterator(chunk_size=_CHUNK):
            key = -1 if company is None else company
            log_range = cursor_of.get(key)
            if log_range is None:
                continue
            if matched:
                log_range.positions.append(log_range.first + seen[key])
            seen[key] += 1
    return seen


def _proof(log_range: LogRange, filtered: bool) -> list[str]:
    start = log_range.start
    if not filtered:
        # the rows are positions first..end-1: the proof is the frontier of the first `first` leaves
        return list(start.frontier) if start is not None else []
    prefix = Frontier.from_hex(start.tree_size, start.frontier) if start is not None else None
    runs = PositionRuns.from_positions(log_range.positions)
    members = set(log_range.positions)
    stored = leaf_hashes(log_id=log_range.log.pk, after=log_range.first, upto=log_range.end.tree_size)
    # closed here, not when garbage-collected: its server-side cursor belongs to this transaction
    with closing(stored):
        others = (leaf for position, leaf in zip(range(log_range.first, log_range.end.tree_size), stored,
                                                 strict=False) if position not in members)
        return [node.hex() for node in multiproof(log_range.end.tree_size, runs, others, prefix=prefix)]


def _runs(positions: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for p in positions:
        if runs and runs[-1][0] + runs[-1][1] == p:
            runs[-1][1] += 1
        else:
            runs.append([p, 1])
    return runs


def _missing(plan: ExportPlan) -> dict[str, int]:
    """First position per log whose event row is gone (deleted behind the service's back)."""
    report = Report()
    check_logs(report, after_seal=plan.after_seal, through_seal=plan.through_seal,
               companies=[r.key for r in plan.logs], chains=False)
    return dict(report.first_bad)


def export_stream(*, plan: ExportPlan, fmt: str) -> Iterator[bytes]:
    """The bytes of the export `plan` describes (see the module docstring)."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError("format must be csv or jsonl")
    members = membership(after_seal=plan.after_seal, through_seal=plan.through_seal)
    counter = _Counter()
    if fmt == "csv":
        yield (",".join(COLUMNS) + "\n").encode()
    postgres = connection.vendor == "postgresql"
    yield from (_pg_rows if postgres else _orm_rows)(plan, members, fmt, counter)
    filtered = plan.filtered
    entries = []
    expected = sum(r.end.tree_size - r.first for r in plan.logs)
    if filtered:
        seen = _filtered_positions(plan, members)
        complete = sum(seen.values()) == expected and counter.rows == sum(len(r.positions) for r in plan.logs)
    else:
        complete = counter.rows == expected
    for r in plan.logs:
        rows = len(r.positions) if filtered else r.end.tree_size - r.first
        entry = {"log": r.log.name, "first": r.first, "rows": rows,
                 "start": r.start.as_document(r.log.name) if r.start else None,
                 "end": r.end.as_document(r.log.name)}
        if filtered:
            entry["positions"] = _runs(r.positions)
        entries.append(entry)
    unsealed_bytes, unsealed = (_unsealed_rows(plan, fmt) if plan.unsealed
                                else (b"", {"rows": 0, "leaves_sha256": hashlib.sha256().hexdigest()}))
    yield unsealed_bytes
    statement = {
        "format": FORMAT,
        "exported_at": format_time(timezone.now()),
        "request": plan.event_filter.describe(),
        "filtered": filtered,
        "seals": {"after": plan.after_seal, "through": plan.through_seal},
        "logs": entries,
        "unsealed": unsealed,
    }
    if not complete:  # an event row was deleted behind the service's back: say where, the file must fail
        statement["missing"] = _missing(plan) or {"(rows)": expected - counter.rows}
    key_id, signature = signing.sign(signing.statement_message(FORMAT, statement))
    trailer = {
        "format": FORMAT,
        "leaf": LEAF_RULE,
        "columns": list(COLUMNS),
        "public_key_url": PUBLIC_KEY_PATH,
        "statement": statement,
        "signature": {"key_id": key_id, "value": signature},
        "proofs": {r.log.name: _proof(r, filtered) for r in plan.logs},
    }
    text = signing.canonical_json(trailer).decode()
    if fmt == "jsonl":
        yield text.encode() + b"\n"
    else:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow([CSV_TRAILER_MARK, text])
        yield out.getvalue().encode()
