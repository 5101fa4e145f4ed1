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
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction
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
    report = ReconcileReport(since=since, until=until)
    ours_by_key: dict[tuple[str, str], list[OurCall]] = defaultdict(list)
    for call in ours:
        if since <= call.at < until and call.request_id:
            ours_by_key[(call.request_id, call.operation)].append(call)
            report.ours += 1
    theirs_by_key: dict[tuple[str, str], list[PartnerEntry]] = defaultdict(list)
    for entry in theirs:
        if since - margin <= entry.at < until + margin and entry.request_id:
            key = (entry.request_id, normalise_operation(entry.operation))
            theirs_by_key[key].append(entry)
            if since <= entry.at < until:
                report.theirs += 1
    for key in sorted(set(ours_by_key) | set(theirs_by_key)):
        mine = sorted(ours_by_key.get(key, []), key=lambda c: c.at)
        partner = sorted(theirs_by_key.get(key, []), key=lambda e: e.at)
        # our calls the partner could not have seen do not consume partner entries first
        mine.sort(key=lambda c: not c.expected_at_partner())
        for call, entry in zip(mine, partner, strict=False):
            report.matched += 1
            if call.outcome != entry.outcome:
                report.differences.append(Difference("outcome_mismatch", key[0], key[1], call.event_id,
                                                     call.outcome, entry.result, call.at, entry.at))
            if abs((entry.at - call.at).total_seconds()) > skew_threshold_s:
                report.differences.append(Difference("clock_skew", key[0], key[1], call.event_id,
                                                     call.outcome, entry.result, call.at, entry.at))
        for call in mine[len(partner):]:
            if call.expected_at_partner():
                report.differences.append(Difference("missing_at_partner", key[0], key[1], call.event_id,
                                                      call.outcome, "", call.at, None))
        for entry in partner[len(mine):]:
            if since <= entry.at < until:
                report.differences.append(Difference("missing_here", key[0], key[1], None, "",
                                                     entry.result, None, entry.at))
    return report


# --- reading both sides ----------------------------------------------------------------------


def _parse_time(value: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time without offset: {value!r}")
    return moment


def _int_or_none(value) -> int | None:
    return None if value in (None, "") else int(value)


def partner_entries_from_dicts(entries: Iterable[dict]) -> list[PartnerEntry]:
    """The sandbox's `{"entries": [...]}` items (request_id, operation, result, http_status, at, ...)."""
    return [
        PartnerEntry(
            request_id=entry.get("request_id") or "",
            operation=entry.get("operation") or "",
            result=entry.get("result") or "",
            at=_parse_time(entry["at"]),
            http_status=_int_or_none(entry.get("http_status")),
            device_ref=entry.get("device_ref") or "",
        )
        for entry in entries
    ]


def partner_entries_from_text(text: str, *, name: str = "") -> list[PartnerEntry]:
    """A partner log file: the `GET /v1/audit` JSON document, JSON Lines, or CSV with its columns."""
    stripped = text.lstrip()
    if name.endswith(".csv") or (stripped and not stripped.startswith(("{", "["))):
        return partner_entries_from_dicts(csv.DictReader(io.StringIO(text)))
    if stripped.startswith("["):
        return partner_entries_from_dicts(json.loads(text))
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        document = None
    if isinstance(document, dict) and "entries" in document:
        return partner_entries_from_dicts(document["entries"])
    return partner_entries_from_dicts(json.loads(line) for line in text.splitlines() if line.strip())


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


def audit_reconcile(
    *,
    partner_entries: list[PartnerEntry],
    partner_id: int | None,
    since: datetime.datetime,
    until: datetime.datetime,
    skew_threshold_s: float | None = None,
    actor_ref: str = "",
) -> ReconcileReport:
    """Reconcile our events with already-fetched partner entries; record `audit.reconciled`.

    With differences, also records a `security.alert` (reason `audit_reconcile_mismatch`)
    and increments `smarthome_audit_reconcile_differences_total{kind}`.
    """
    threshold = conf.reconcile_skew_s() if skew_threshold_s is None else skew_threshold_s
    report = reconcile_logs(
        our_calls(partner_id=partner_id, since=since, until=until),
        partner_entries, since=since, until=until, skew_threshold_s=threshold,
    )
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
