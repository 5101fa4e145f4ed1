"""Which events a run of seals holds, and in which order: the one rule behind every position.

A seal k (`AuditSeal`) holds the events with `low_k < id <= high_k` that existed when it ran
(ids in its `gaps` did not: their transaction had not committed yet, or rolled back), plus
`late_k`: ids out of earlier seals' gaps whose events appeared since. Within each log,
positions follow seal order and, inside one seal, id order - late ids (all below low_k)
first. So the events of seals (a, b] of *every* log come out of one walk in id order, with
each seal's late ids spliced in just before its range:

    (high_a, low_j]  late_j  (low_j, low_m]  late_m  (low_m, high_b]

where each range excludes the "gap events": existing events whose ids lie in a gap of a seal
in (a, b] (they belong to a later seal, or to none yet). Export, verification and sealing all
walk seals through `Membership`; PostgreSQL streams each range as one ordered index scan.
"""

import bisect
import datetime
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Q

from audit.models import AuditEvent, AuditSeal


@dataclass(frozen=True)
class Segment:
    """Either a range of ids `(low, high]` (minus `Membership.excluded`) or explicit late ids."""

    low: int = 0
    high: int = 0
    late: tuple[int, ...] = ()
    seal_id: int | None = None  # the seal of late ids

    @property
    def is_late(self) -> bool:
        return bool(self.late)


@dataclass
class Membership:
    after_seal: int  # a: 0 = from the very first seal
    through_seal: int  # b
    low: int = 0  # high_id of seal a
    high: int = 0  # high_id of seal b
    segments: list[Segment] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)  # gap events inside the ranges, sorted

    def sql_range(self, segment: Segment, alias: str = "e") -> tuple[str, list]:
        """WHERE clause (PostgreSQL) of one segment; values as parameters."""
        if segment.is_late:
            return f"{alias}.id = ANY(%s)", [list(segment.late)]
        return (f"{alias}.id > %s AND {alias}.id <= %s AND NOT ({alias}.id = ANY(%s))",
                [segment.low, segment.high, self.excluded_in(segment)])

    def q(self, segment: Segment) -> Q:
        if segment.is_late:
            return Q(id__in=segment.late)
        return Q(id__gt=segment.low, id__lte=segment.high) & ~Q(id__in=self.excluded_in(segment))

    def excluded_in(self, segment: Segment) -> list[int]:
        lo = bisect.bisect_right(self.excluded, segment.low)
        hi = bisect.bisect_right(self.excluded, segment.high)
        return self.excluded[lo:hi]


def seal_high(seal_id: int) -> int:
    if not seal_id:
        return 0
    return AuditSeal.objects.values_list("high_id", flat=True).get(pk=seal_id)


def membership(*, after_seal: int, through_seal: int) -> Membership:
    """The segments of seals (after_seal, through_seal] (see the module docstring)."""
    plan = Membership(after_seal, through_seal, seal_high(after_seal), seal_high(through_seal))
    if through_seal <= after_seal:
        return plan
    irregular = (
        AuditSeal.objects.filter(pk__gt=after_seal, pk__lte=through_seal)
        .exclude(Q(gaps=[]) & Q(late=[]))
        .order_by("pk")
        .values_list("pk", "low_id", "gaps", "late")
    )
    cursor = plan.low
    gap_ranges: list[tuple[int, int]] = []
    for seal_id, low, gaps, late in irregular:
        gap_ranges.extend((a, b) for a, b in gaps)
        if late:
            if low > cursor:
                plan.segments.append(Segment(cursor, low))
            cursor = max(cursor, low)
            plan.segments.append(Segment(late=tuple(sorted(late)), seal_id=seal_id))
    if plan.high > cursor:
        plan.segments.append(Segment(cursor, plan.high))
    plan.excluded = existing_ids_in(gap_ranges)
    return plan


def existing_ids_in(ranges: list[tuple[int, int]]) -> list[int]:
    """Ids of existing events inside the inclusive id ranges, sorted."""
    if not ranges:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT e.id FROM audit_event e JOIN unnest(%s::bigint[], %s::bigint[]) AS g(lo, hi) "
                "ON e.id BETWEEN g.lo AND g.hi ORDER BY e.id",
                [[a for a, _ in ranges], [b for _, b in ranges]],
            )
            return [row[0] for row in cursor.fetchall()]
    found: set[int] = set()
    for start in range(0, len(ranges), 200):
        q = Q()
        for a, b in ranges[start:start + 200]:
            q |= Q(id__gte=a, id__lte=b)
        found.update(AuditEvent.objects.filter(q).values_list("id", flat=True))
    return sorted(found)


def open_gaps(*, since: datetime.datetime | None) -> tuple[list[tuple[int, int]], set[int]]:
    """(gap ranges of seals sealed at or after `since` (all seals if None), ids they sealed late)."""
    seals = AuditSeal.objects.exclude(Q(gaps=[]) & Q(late=[]))
    if since is not None:
        seals = seals.filter(sealed_at__gte=since)
    ranges: list[tuple[int, int]] = []
    late: set[int] = set()
    for gaps, late_ids in seals.values_list("gaps", "late"):
        ranges.extend((a, b) for a, b in gaps)
        late.update(late_ids)
    return ranges, late


def gap_ranges(ids_in_order, low: int) -> tuple[list[list[int]], int]:
    """Missing ids between `low` and the last of `ids_in_order` as [a, b] ranges; -> (ranges, high)."""
    ranges: list[list[int]] = []
    previous = low
    for event_id in ids_in_order:
        if event_id > previous + 1:
            ranges.append([previous + 1, event_id - 1])
        previous = event_id
    return ranges, previous
