"""Reads of the audit app, scoped to the caller where a caller is involved."""

import datetime
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from audit.actions import Action, Outcome
from audit.membership import existing_ids_in, open_gaps
from audit.models import AuditCheckpoint, AuditEvent, AuditLog, AuditPrune, AuditRefusal, AuditSeal
from core.security.tenancy import company_ids_for_user

ROW_FILTERS = (("building_id", "building_id"), ("partner_id", "partner_id"), ("action", "action"),
               ("outcome", "outcome"))


@dataclass(frozen=True)
class EventFilter:
    """What an export or a listing selects. `company_ids=None` means every company."""

    company_ids: frozenset[int] | None = frozenset()
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    building_id: int | None = None
    partner_id: int | None = None
    action: str | None = None
    outcome: str | None = None

    def q(self) -> Q:
        q = Q()
        if self.company_ids is not None:
            q &= Q(company_id__in=sorted(self.company_ids))
        if self.since is not None:
            q &= Q(occurred_at__gte=self.since)
        if self.until is not None:
            q &= Q(occurred_at__lt=self.until)
        if self.building_id is not None:
            q &= Q(building_id=self.building_id)
        if self.partner_id is not None:
            q &= Q(partner_id=self.partner_id)
        if self.action:
            q &= Q(action=self.action)
        if self.outcome:
            q &= Q(outcome=self.outcome)
        return q

    def is_everything(self) -> bool:
        return self == EventFilter(company_ids=None)

    def row_criteria(self) -> dict[str, object]:
        """The criteria on single rows (not company, not time): column -> value."""
        values = {column: getattr(self, attr) for attr, column in ROW_FILTERS}
        return {column: value for column, value in values.items() if value not in (None, "")}

    def row_q(self) -> Q:
        return Q(**self.row_criteria())

    def is_filtered(self) -> bool:
        """True when the export is a filtered subset of its logs (building, partner, action, outcome)."""
        return bool(self.row_criteria())

    def describe(self) -> dict:
        return {
            "companies": None if self.company_ids is None else sorted(self.company_ids),
            "from": self.since.isoformat() if self.since else None,
            "to": self.until.isoformat() if self.until else None,
            "building": self.building_id,
            "partner": self.partner_id,
            "action": self.action,
            "outcome": self.outcome,
        }


def event_filter_for_user(user, **criteria) -> EventFilter:
    """An EventFilter limited to the companies `user` may see."""
    companies = company_ids_for_user(user)
    return EventFilter(company_ids=None if companies is None else frozenset(companies), **criteria)


def event_list(*, user) -> QuerySet[AuditEvent]:
    """Events `user` may see (their management companies; superusers see all)."""
    return AuditEvent.objects.filter(event_filter_for_user(user).q())


def seal_latest() -> AuditSeal | None:
    return AuditSeal.objects.order_by("-pk").first()


def seal_latest_verified() -> tuple[int, datetime.datetime] | None:
    """(seal id, when) of the last successful `verify_audit`, from its audit event."""
    event = (
        AuditEvent.objects.filter(action=Action.AUDIT_VERIFIED, outcome=Outcome.SUCCESS)
        .order_by("-id")
        .only("object_ref", "occurred_at")
        .first()
    )
    if event is None or not event.object_ref.startswith("seal:"):
        return None
    return int(event.object_ref.split(":", 1)[1]), event.occurred_at


def logs_for_companies(company_ids: frozenset[int] | None) -> QuerySet[AuditLog]:
    """The logs of these companies (None: every log, the platform's included)."""
    logs = AuditLog.objects.order_by("id")
    return logs if company_ids is None else logs.filter(company_id__in=sorted(company_ids))


def checkpoint_at_seal(*, log_id: int, seal_id: int) -> AuditCheckpoint | None:
    """The log's latest checkpoint made by seal `seal_id` or before (without its leaf hashes)."""
    if not seal_id:
        return None
    return (AuditCheckpoint.objects.filter(log_id=log_id, seal_id__lte=seal_id).order_by("-tree_size")
            .defer("leaf_hashes").first())


def checkpoint_of_size(*, log_id: int, tree_size: int) -> AuditCheckpoint | None:
    return AuditCheckpoint.objects.filter(log_id=log_id, tree_size=tree_size).defer("leaf_hashes").first()


def prune_boundary(log_id: int) -> int:
    """The log's positions below this may have lost their event rows to retention pruning."""
    prune = AuditPrune.objects.filter(log_id=log_id).order_by("-below_position").first()
    return prune.below_position if prune else 0


def leaf_hashes(*, log_id: int, after: int, upto: int):
    """The stored leaf hashes of positions after..upto-1 of a log, in order."""
    rows = (AuditCheckpoint.objects.filter(log_id=log_id, tree_size__gt=after, first_position__lt=upto)
            .order_by("tree_size").values_list("first_position", "leaf_hashes"))
    for first, blob in rows.iterator(chunk_size=20):
        blob = bytes(blob)
        for position in range(max(first, after), min(first + len(blob) // 32, upto)):
            offset = 32 * (position - first)
            yield blob[offset:offset + 32]


def unsealed_count() -> int:
    last = seal_latest()
    above = AuditEvent.objects.filter(id__gt=last.high_id if last else 0).count()
    ranges, late = open_gaps(since=None)
    return above + len(set(existing_ids_in(ranges)) - late)


def refusals_for_user(user):
    """Refused partner calls: partners serve every company, so only staff who see every company
    (security, superusers) see them."""
    if company_ids_for_user(user) is None:
        return AuditRefusal.objects.all()
    return AuditRefusal.objects.none()
