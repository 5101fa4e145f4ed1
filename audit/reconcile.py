"""Reconciliation of our partner-call events with the partner's own log (`GET /v1/audit`).

Matching is by (request_id, operation); `reconcile_logs` is pure (two lists in, a report out).

Mapping between the two vocabularies — the one table both sides are read through:

| our action                | partner `operation` (aliases)         |
|---------------------------|----------------------------------------|
| partner.open              | device.open (open)                     |
| partner.webrtc_session    | device.webrtc_session (webrtc_session) |
| partner.face_enrol        | face.enrol (face_enrol)                |
| partner.face_delete       | face.delete (face_delete)              |
| partner.allowlist_full    | allowlist.replace (allowlist_full)     |
| partner.allowlist_delta   | allowlist.patch (allowlist_delta)      |

| partner `result` (http_status)                                  | our outcome  |
|-----------------------------------------------------------------|--------------|
| opened, created, enrolled, deleted, replaced, patched, ok (2xx) | success      |
| denied                                                          | denied       |
| offline                                                         | unavailable  |
| any other result with 5xx                                       | error        |
| any other result with 4xx                                       | failure      |

Differences reported: `missing_at_partner` (we logged a call the partner did not),
`missing_here` (the partner logged a call we did not), `outcome_mismatch` (both logged it,
outcomes differ under the table; e.g. our timeout vs their success), `clock_skew` (matched,
timestamps further apart than the threshold). Our events that never reached the partner
(no HTTP status and outcome unavailable/error: breaker open, connection refused) are not
expected at the partner. Partner entries within the threshold outside the period are used
for matching but never reported as missing here.
"""

import csv
import datetime
import io
import itertools
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils.module_loading import import_string
from prometheus_client import Counter

from audit import conf
from audit.actions import PARTNER_CALL_ACTIONS, Action, ActorKind, Outcome
from audit.models import AuditEvent
from audit.services import record

OPERATIONS = {
    Action.PARTNER_OPEN: "device.open",
    Action.PARTNER_WEBRTC_SESSION: "device.webrtc_session",
    Action.PARTNER_FACE_ENROL: "face.enrol",
    Action.PARTNER_FACE_DELETE: "face.delete",
    Action.PARTNER_ALLOWLIST_FULL: "allowlist.replace",
    Action.PARTNER_ALLOWLIST_DELTA: "allowlist.patch",
}
OPERATION_ALIASES = {
    "open": "device.open",
    "webrtc_session": "device.webrtc_session",
    "face_enrol": "face.enrol",
    "face_delete": "face.delete",
    "allowlist_full": "allowlist.replace",
    "allowlist_delta": "allowlist.patch",
}
SUCCESS_RESULTS = {"opened", "created", "enrolled", "deleted", "replaced", "patched", "ok", "success"}
KINDS = ("missing_at_partner", "missing_here", "outcome_mismatch", "clock_skew")

differences_total = Counter(
    "smarthome_audit_reconcile_differences_total",
    "Differences found between our audit log and a partner's log",
    ["kind"],
)


@dataclass(frozen=True)
class OurCall:
    event_id: int
    request_id: str
    action: str
    outcome: str
    at: datetime.datetime
    http_status: int | None = None

    @property
    def operation(self) -> str:
        return OPERATIONS[self.action]

    def expected_at_partner(self) -> bool:
        return self.http_status is not None or self.outcome not in (Outcome.UNAVAILABLE, Outcome.ERROR)


@dataclass(frozen=True)
class PartnerEntry:
    request_id: str
    operation: str
    result: str
    at: datetime.datetime
    http_status: int | None = None
    device_ref: str = ""

    @property
    def outcome(self) -> str:
        return partner_outcome(self.result, self.http_status)


@dataclass(frozen=True)
class Difference:
    kind: str
    request_id: str
    operation: str
    our_event_id: int | None = None
    our_outcome: str = ""
    partner_result: str = ""
    our_at: datetime.datetime | None = None
    partner_at: datetime.datetime | None = None

    @property
    def skew_s(self) -> float | None:
        if self.our_at and self.partner_at:
            return round((self.partner_at - self.our_at).total_seconds(), 3)
        return None


@dataclass
class ReconcileReport:
    since: datetime.datetime
    until: datetime.datetime
    ours: int = 0
    theirs: int = 0
    matched: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for difference in self.differences:
            counts[difference.kind] += 1
        return counts

    @property
    def clean(self) -> bool:
        return not self.differences

    def summary(self) -> dict:
        return {"ours": self.ours, "theirs": self.theirs, "matched": self.matched, **self.counts}

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["kind", "request_id", "operation", "our_event_id", "our_outcome", "partner_result",
                         "our_at", "partner_at", "skew_s"])
        for d in self.differences:
            writer.writerow([d.kind, d.request_id, d.operation, d.our_event_id or "", d.our_outcome,
                             d.partner_result, d.our_at.isoformat() if d.our_at else "",
                             d.partner_at.isoformat() if d.partner_at else "",
                             "" if d.skew_s is None else d.skew_s])
        return out.getvalue()


def partner_outcome(result: str | None, http_status: int | None) -> str:
    """The partner's `result` word translated to our Outcome (the table in the module docstring)."""
    result = (result or "").lower()
    if result in SUCCESS_RESULTS:
        return Outcome.SUCCESS
    if result == "denied":
        return Outcome.DENIED
    if result == "offline":
        return Outcome.UNAVAILABLE
    if http_status is not None and 200 <= http_status < 300 and not result:
        return Outcome.SUCCESS
    if http_status is not None and http_status >= 500:
        return Outcome.ERROR
    return Outcome.FAILURE


def normalise_operation(operation: str) -> str:
    return OPERATION_ALIASES.get(operation, operation)


def reconcile_logs(
    ours: Iterable[OurCall],
    theirs: Iterable[PartnerEntry],
    *,
    since: datetime.datetime,
    until: datetime.datetime,
    skew_threshold_s: float = 5.0,
) -> ReconcileReport:
    """Match two logs of the period [since, until) and list every difference (pure function)."""
    margin = datetime.timedelta(seconds=skew_threshold_s)
    mine = sorted((c for c in ours if since <= c.at < until and c.request_id), key=lambda c: c.request_id)
    partner = sorted((e for e in theirs if since - margin <= e.at < until + margin and e.request_id),
                     key=lambda e: e.request_id)
    return merge_logs(mine, partner, since=since, until=until, skew_threshold_s=skew_threshold_s)


def merge_logs(ours: Iterable[OurCall], theirs: Iterable[PartnerEntry], *, since: datetime.datetime,
               until: datetime.datetime, skew_threshold_s: float) -> ReconcileReport:
    """The matching rule, over two streams already sorted by request id (code point order) and
    limited to the period (the partner's with the threshold's margin): memory holds one request
    id's entries at a time, however long the logs."""
    report = ReconcileReport(since=since, until=until)
    ours_groups = itertools.groupby(ours, key=lambda c: c.request_id)
    theirs_groups = itertools.groupby(theirs, key=lambda e: e.request_id)
    mine_next = next(ours_groups, None)
    partner_next = next(theirs_groups, None)
    while mine_next is not None or partner_next is not None:
        if partner_next is None or (mine_next is not None and mine_next[0] < partner_next[0]):
            request_id, mine, partner = mine_next[0], list(mine_next[1]), []
            mine_next = next(ours_groups, None)
        elif mine_next is None or partner_next[0] < mine_next[0]:
            request_id, mine, partner = partner_next[0], [], list(partner_next[1])
            partner_next = next(theirs_groups, None)
        else:
            request_id, mine, partner = mine_next[0], list(mine_next[1]), list(partner_next[1])
            mine_next, partner_next = next(ours_groups, None), next(theirs_groups, None)
        report.ours += len(mine)
        report.theirs += sum(1 for e in partner if since <= e.at < until)
        if len(mine) == 1 and len(partner) == 1 and mine[0].operation == normalise_operation(partner[0].operation):
            _pair(report, request_id, mine[0], partner[0], skew_threshold_s)  # the usual case, directly
        else:
            _match(report, request_id, mine, partner, skew_threshold_s)
    return report


def _pair(report: ReconcileReport, request_id: str, call: OurCall, entry: PartnerEntry, skew_threshold_s: float
          ) -> None:
    """One of our calls matched with one partner entry: compare outcome and time."""
    report.matched += 1
    if call.outcome != entry.outcome:
        report.differences.append(Difference("outcome_mismatch", request_id, call.operation, call.event_id,
                                             call.outcome, entry.result, call.at, entry.at))
    if abs((entry.at - call.at).total_seconds()) > skew_threshold_s:
        report.differences.append(Difference("clock_skew", request_id, call.operation, call.event_id,
                                             call.outcome, entry.result, call.at, entry.at))


def _match(report: ReconcileReport, request_id: str, mine: list[OurCall], partner: list[PartnerEntry],
           skew_threshold_s: float) -> None:
    """The differences between our calls and the partner's entries of one request id."""
    since, until = report.since, report.until
    by_operation: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for call in mine:
        by_operation[call.operation][0].append(call)
    for entry in partner:
        by_operation[normalise_operation(entry.operation)][1].append(entry)
    for operation in sorted(by_operation):
        calls, entries = by_operation[operation]
        calls.sort(key=lambda c: c.at)
        entries.sort(key=lambda e: e.at)
        # our calls the partner could not have seen do not consume partner entries first
        calls.sort(key=lambda c: not c.expected_at_partner())
        for call, entry in zip(calls, entries, strict=False):
            _pair(report, request_id, call, entry, skew_threshold_s)
        for call in calls[len(entries):]:
            if call.expected_at_partner():
                report.differences.append(Difference("missing_at_partner", request_id, operation, call.event_id,
                                                     call.outcome, "", call.at, None))
        for entry in entries[len(calls):]:
            if since <= entry.at < until:
                report.differences.append(Difference("missing_here", request_id, operation, None, "",
                                                     entry.result, None, entry.at))


# --- reading both sides ----------------------------------------------------------------------


def _parse_time(value: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(value)  # Python 3.11 reads a trailing Z
    if moment.tzinfo is None:
        raise ValueError(f"time without offset: {value!r}")
    return moment


def _int_or_none(value) -> int | None:
    return None if value in (None, "") else int(value)


def iter_partner_entries(entries: Iterable[dict]) -> Iterator[PartnerEntry]:
    """The sandbox's `{"entries": [...]}` items (request_id, operation, result, http_status, at, ...)."""
    for entry in entries:
        get = entry.get
        yield PartnerEntry(get("request_id") or "", get("operation") or "", get("result") or "",
                           _parse_time(entry["at"]), _int_or_none(get("http_status")), get("device_ref") or "")


def partner_entries_from_dicts(entries: Iterable[dict]) -> list[PartnerEntry]:
    return list(iter_partner_entries(entries))


def partner_entries_from_text(text: str, *, name: str = "") -> list[PartnerEntry]:
    """A partner log file: the `GET /v1/audit` JSON document, JSON Lines, or CSV with its columns."""
    return list(partner_entries_from_lines(io.StringIO(text), name=name))


def partner_entries_from_lines(lines: Iterable[str], *, name: str = "") -> Iterator[PartnerEntry]:
    """Like `partner_entries_from_text`, streaming: JSON Lines and CSV are read line by line (a
    million-entry log never sits in memory); a JSON document is read whole."""
    lines = iter(lines)
    first = next(lines, "")
    while first is not None and not first.strip():
        first = next(lines, None)
    if first is None:
        return
    stripped = first.lstrip()
    rest = itertools.chain([first], lines)
    if name.endswith(".csv") or not stripped.startswith(("{", "[")):
        yield from iter_partner_entries(csv.DictReader(rest))
        return
    if stripped.startswith("["):
        yield from iter_partner_entries(json.loads("".join(rest)))
        return
    try:
        document = json.loads(first)
    except json.JSONDecodeError:  # the first line is not a whole document: a multi-line JSON document
        document = json.loads("".join(rest))
        yield from iter_partner_entries(document["entries"] if isinstance(document, dict) else document)
        return
    if isinstance(document, dict) and "entries" in document:
        yield from iter_partner_entries(document["entries"])
        return
    yield from iter_partner_entries(json.loads(line) for line in rest if line.strip())


def our_calls(*, partner_id: int | None, since: datetime.datetime, until: datetime.datetime) -> list[OurCall]:
    """Our partner-call events of the period (with the request id), oldest first."""
    events = AuditEvent.objects.filter(
        action__in=PARTNER_CALL_ACTIONS, occurred_at__gte=since, occurred_at__lt=until
    ).exclude(request_id="")
    if partner_id is not None:
        events = events.filter(partner_id=partner_id)
    return [
        OurCall(event_id=e[0], request_id=e[1], action=e[2], outcome=e[3], at=e[4], http_status=e[5])
        for e in events.order_by("id").values_list("id", "request_id", "action", "outcome", "occurred_at",
                                                   "http_status").iterator(chunk_size=2000)
    ]


def _stream(sql: str, params: list, make) -> Iterator:
    """Rows of `sql` through a binary server-side cursor (C loaders: timestamps are the costly part)."""
    with connection.connection.cursor(name=f"audit_reconcile_{uuid.uuid4().hex[:12]}", binary=True) as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(5000):
            for row in rows:
                yield make(*row)


_COPY_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_line(e: PartnerEntry) -> str:
    """One COPY (text format) line; the partner's strings are untrusted, hence escaped."""
    status = "\\N" if e.http_status is None else str(int(e.http_status))
    return (f"{e.request_id.translate(_COPY_ESCAPE)}\t{e.operation.translate(_COPY_ESCAPE)}\t"
            f"{e.result.translate(_COPY_ESCAPE)}\t{e.at.isoformat()}\t{status}\t{e.device_ref.translate(_COPY_ESCAPE)}\n")


def _reconcile_in_database(entries: Iterable[PartnerEntry], *, partner_id: int | None, since: datetime.datetime,
                           until: datetime.datetime, skew_threshold_s: float) -> ReconcileReport:
    """`reconcile_logs` for logs of any length (PostgreSQL): the partner's entries go to a
    temporary table by COPY, both sides come back sorted by request id, `merge_logs` walks them."""
    margin = datetime.timedelta(seconds=skew_threshold_s)
    low, high = since - margin, until + margin
    with transaction.atomic():
        with connection.cursor() as cursor:
            # inside an outer transaction ON COMMIT has not dropped the last one yet
            cursor.execute("DROP TABLE IF EXISTS pg_temp.audit_partner_log")
            cursor.execute("CREATE TEMP TABLE audit_partner_log (request_id text NOT NULL, operation text NOT NULL, "
                           "result text NOT NULL, at timestamptz NOT NULL, http_status integer, device_ref text "
                           "NOT NULL) ON COMMIT DROP")
            with cursor.copy("COPY audit_partner_log FROM STDIN") as copy:
                lines = []
                for e in entries:
                    if e.request_id and low <= e.at < high:
                        lines.append(_copy_line(e))
                        if len(lines) >= 5000:
                            copy.write("".join(lines))
                            lines = []
                copy.write("".join(lines))
        where, params = "", [[str(a) for a in PARTNER_CALL_ACTIONS], since, until]
        if partner_id is not None:
            where, params = " AND partner_id = %s", [*params, partner_id]
        ours = _stream(
            "SELECT id, request_id, action, outcome, occurred_at, http_status FROM audit_event "  # noqa: S608
            f"WHERE action = ANY(%s) AND occurred_at >= %s AND occurred_at < %s AND request_id <> ''{where} "
            'ORDER BY request_id COLLATE "C", id', params, OurCall)
        theirs = _stream('SELECT request_id, operation, result, at, http_status, device_ref FROM audit_partner_log '
                         'ORDER BY request_id COLLATE "C", at', [], PartnerEntry)
        return merge_logs(ours, theirs, since=since, until=until, skew_threshold_s=skew_threshold_s)


def audit_reconcile(
    *,
    partner_entries: Iterable[PartnerEntry],
    partner_id: int | None,
    since: datetime.datetime,
    until: datetime.datetime,
    skew_threshold_s: float | None = None,
    actor_ref: str = "",
) -> ReconcileReport:
    """Reconcile our events with the partner's entries (a list, or a stream of any length); record
    `audit.reconciled`. On PostgreSQL memory stays flat (`_reconcile_in_database`).

    With differences, also records a `security.alert` (reason `audit_reconcile_mismatch`)
    and increments `smarthome_audit_reconcile_differences_total{kind}`.
    """
    threshold = conf.reconcile_skew_s() if skew_threshold_s is None else skew_threshold_s
    if connection.vendor == "postgresql":
        report = _reconcile_in_database(partner_entries, partner_id=partner_id, since=since, until=until,
                                        skew_threshold_s=threshold)
    else:
        report = reconcile_logs(our_calls(partner_id=partner_id, since=since, until=until), partner_entries,
                                since=since, until=until, skew_threshold_s=threshold)
    actor = {"actor_kind": ActorKind.STAFF, "actor_ref": actor_ref} if actor_ref else {}
    with transaction.atomic():
        record(action=Action.AUDIT_RECONCILED, outcome=Outcome.SUCCESS if report.clean else Outcome.FAILURE,
               partner_id=partner_id, object_type="partner_log", reason="" if report.clean else "differences",
               **actor)
        if not report.clean:
            record(action=Action.SECURITY_ALERT, outcome=Outcome.FAILURE, partner_id=partner_id,
                   object_type="partner_log", reason="audit_reconcile_mismatch")
    for kind, count in report.counts.items():
        if count:
            differences_total.labels(kind=kind).inc(count)
    return report


# --- live partners (the fetcher is provided by the partners app) -------------------------------


class FetcherNotConfigured(Exception):
    pass


def partner_log_fetcher():
    """The object named by AUDIT_PARTNER_LOG_FETCHER (a module or an instance) with
    `fetch(*, partner_id: int | None, url: str | None, since, until) -> list[dict]` (entries as
    in GET /v1/audit) and `partners() -> list[int]` (the partners offering that endpoint)."""
    path = conf.partner_log_fetcher()
    if not path:
        raise FetcherNotConfigured(
            "AUDIT_PARTNER_LOG_FETCHER is not set: use --file, or configure the partners app's fetcher"
        )
    return import_string(path)
