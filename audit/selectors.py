"""Reads of the audit app, scoped to the caller where a caller is involved."""

import datetime
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet

from audit.actions import Action, Outcome
from audit.canonical import FIELDS, sql_columns, strings_from_values
from audit.models import AuditCheckpoint, AuditEvent, AuditLeaf, AuditPrune
from core.security.tenancy import company_ids_for_user

_CHUNK = 5000


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


def checkpoint_latest() -> AuditCheckpoint | None:
    return AuditCheckpoint.objects.order_by("-tree_size").first()


def checkpoint_latest_verified() -> tuple[int, datetime.datetime] | None:
    """(tree size, when) of the last successful `verify_audit`, from its audit event."""
    event = (
        AuditEvent.objects.filter(action=Action.AUDIT_VERIFIED, outcome=Outcome.SUCCESS)
        .order_by("-id")
        .only("object_ref", "occurred_at")
        .first()
    )
    if event is None or not event.object_ref.startswith("size:"):
        return None
    return int(event.object_ref.split(":", 1)[1]), event.occurred_at


def prune_boundary() -> int:
    """Positions below this may have lost their event rows to retention pruning."""
    prune = AuditPrune.objects.order_by("-below_position").first()
    return prune.below_position if prune else 0


# S608 noqa below: the SQL is built from constant column expressions (and a Django-compiled
# filter); every value travels as a parameter.
def leaf_rows() -> Iterator[tuple[int, bytes, tuple[str, ...] | None]]:
    """Every leaf in position order: (position, stored leaf hash, canonical strings or None if pruned)."""
    if connection.vendor == "postgresql":
        sql = (
            f"SELECT l.position, l.leaf_hash, e.id IS NOT NULL, {sql_columns('e')} "  # noqa: S608
            "FROM audit_leaf l LEFT JOIN audit_event e ON e.id = l.event_id ORDER BY l.position"
        )
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql)
            while rows := cursor.fetchmany(_CHUNK):
                for row in rows:
                    yield row[0], bytes(row[1]), (row[3:] if row[2] else None)
        return
    leaves = AuditLeaf.objects.order_by("position").values_list("position", "leaf_hash", "event_id")
    batch: list = []
    for row in leaves.iterator(chunk_size=_CHUNK):
        batch.append(row)
        if len(batch) >= _CHUNK:
            yield from _with_events(batch)
            batch = []
    yield from _with_events(batch)


def _with_events(batch):
    ids = [event_id for _, _, event_id in batch]
    events = {values[0]: values for values in AuditEvent.objects.filter(id__in=ids).values_list(*FIELDS)}
    for position, leaf, event_id in batch:
        values = events.get(event_id)
        yield position, bytes(leaf), (strings_from_values(values) if values else None)


def unsealed_count() -> int:
    return AuditEvent.objects.filter(leaf__isnull=True).count()
