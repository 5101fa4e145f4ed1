"""What the dashboards show, per company or per building: decisions per hour by reason, the
partners that serve the company and how they are doing (circuit breaker, calls that failed, the
company's own outbox backlog, open security alerts).

Everything is counted for the caller's companies only: the outbox backlog is the messages about
the company's sites (allowlists) and its residents' faces, never another company's.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Min, Q
from django.db.models.functions import TruncHour

from access.models import Building, Device, SecurityAlert
from access.reasons import Reason
from access.services.allowlist import site_ref
from audit.actions import PARTNER_CALL_ACTIONS, Action, Outcome
from audit.models import AuditEvent
from consent.models import FaceEnrolment
from consent.services import face_ordering_key
from partners.client.breaker import shared_states
from partners.models import OutboxMessage, Partner, PartnerContract

WINDOW_HOURS = 24
OUTBOX_DEAD_WINDOW = timedelta(hours=24)
PARTNER_CALLS_WINDOW = timedelta(hours=1)


def decisions_by_hour_and_reason(*, company_ids, building_id=None, now, tz) -> list[tuple[object, dict]]:
    """[(hour start in `tz`, {reason: count})] for the last WINDOW_HOURS hours, oldest first."""
    current = now.astimezone(tz).replace(minute=0, second=0, microsecond=0)
    hours = [current - timedelta(hours=WINDOW_HOURS - 1 - i) for i in range(WINDOW_HOURS)]
    counts = {hour: {} for hour in hours}
    rows = AuditEvent.objects.filter(company_id__in=company_ids, occurred_at__gte=hours[0],
                                     action=Action.ACCESS_DECISION)
    if building_id is not None:
        rows = rows.filter(building_id=building_id)
    for row in (rows.annotate(hour=TruncHour("occurred_at", tzinfo=tz)).values("hour", "reason")
                .annotate(n=Count("id")).order_by()):
        bucket = counts.get(row["hour"].astimezone(tz))
        if bucket is not None:
            bucket[row["reason"]] = bucket.get(row["reason"], 0) + row["n"]
    return [(hour, counts[hour]) for hour in hours]


def reason_totals(hours: list[tuple[object, dict]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for _hour, counts in hours:
        for reason, n in counts.items():
            totals[reason] = totals.get(reason, 0) + n
    return totals


@dataclass
class PartnerHealth:
    partner: Partner
    breaker: str = "closed"  # closed | open | half-open | unknown (the shared state could not be read)
    calls: int = 0  # calls to the partner for these companies in the last hour
    failed: int = 0  # of which failed, timed out or found the partner unavailable
    backlog: int = 0  # outbox messages waiting, about these companies
    oldest_waiting: object = None
    dead_recently: int = 0  # dead-lettered in the last 24 h
    open_alerts: int = 0  # security alerts about the partner not yet resolved
    devices: int = 0
    devices_offline: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return (self.breaker == "closed" and self.partner.is_usable and not self.open_alerts
                and not self.dead_recently and self.failed * 5 <= self.calls)


def partners_serving(*, company_ids) -> list[Partner]:
    """Partners with an active contract with one of the companies or a device in their buildings."""
    contracted = PartnerContract.objects.active().filter(company_id__in=company_ids).values("partner_id")
    with_devices = Device.objects.filter(building__company_id__in=company_ids).values("partner_id")
    return list(Partner.objects.filter(Q(pk__in=contracted) | Q(pk__in=with_devices)).order_by("name"))


def partner_health(*, company_ids, now, building_id=None) -> list[PartnerHealth]:
    """How each partner serving the companies (or the building) is doing, for these companies."""
    partners = partners_serving(company_ids=company_ids)
    health = {p.pk: PartnerHealth(partner=p) for p in partners}
    if not health:
        return []
    try:
        for partner_id, state in shared_states(list(health)).items():
            health[partner_id].breaker = state
    except Exception:  # the shared breaker state lives in Redis; a dashboard still shows the rest
        for one in health.values():
            one.breaker = "unknown"
    devices = Device.objects.filter(building__company_id__in=company_ids, partner_id__in=list(health))
    if building_id is not None:
        devices = devices.filter(building_id=building_id)
    for row in devices.values("partner_id").annotate(n=Count("id"), offline=Count("id", filter=Q(online=False))):
        health[row["partner_id"]].devices, health[row["partner_id"]].devices_offline = row["n"], row["offline"]
    calls = AuditEvent.objects.filter(company_id__in=company_ids, occurred_at__gte=now - PARTNER_CALLS_WINDOW,
                                      action__in=PARTNER_CALL_ACTIONS, partner_id__in=list(health))
    if building_id is not None:
        calls = calls.filter(building_id=building_id)
    failed = ~Q(outcome__in=[Outcome.SUCCESS, Outcome.DENIED])
    for row in calls.values("partner_id").annotate(n=Count("id"), failed=Count("id", filter=failed)).order_by():
        health[row["partner_id"]].calls, health[row["partner_id"]].failed = row["n"], row["failed"]
    for row in (_company_outbox(company_ids=company_ids, building_id=building_id)
                .filter(partner_id__in=list(health)).values("partner_id")
                .annotate(waiting=Count("id", filter=Q(status=OutboxMessage.Status.PENDING)),
                          oldest=Min("created_at", filter=Q(status=OutboxMessage.Status.PENDING)),
                          dead=Count("id", filter=Q(status=OutboxMessage.Status.DEAD,
                                                    dead_lettered_at__gte=now - OUTBOX_DEAD_WINDOW)))
                .order_by()):
        one = health[row["partner_id"]]
        one.backlog, one.oldest_waiting, one.dead_recently = row["waiting"], row["oldest"], row["dead"]
    for row in (SecurityAlert.objects.filter(resolved_at__isnull=True, partner_id__in=list(health))
                .values("partner_id").annotate(n=Count("id")).order_by()):
        health[row["partner_id"]].open_alerts = row["n"]
    return list(health.values())


def _company_outbox(*, company_ids, building_id=None):
    """Outbox messages about the companies: their sites' allowlists and their residents' faces."""
    buildings = Building.objects.filter(company_id__in=company_ids)
    if building_id is not None:
        buildings = buildings.filter(pk=building_id)
    keys = [f"allowlist:{site_ref(pk)}" for pk in buildings.values_list("pk", flat=True)]
    if building_id is None:
        subjects = FaceEnrolment.objects.filter(consent__company_id__in=company_ids).values_list("subject_id",
                                                                                                  flat=True)
        keys += [face_ordering_key(subject) for subject in set(subjects)]
    return OutboxMessage.objects.filter(ordering_key__in=keys)


def denial_reasons() -> list[Reason]:
    return [reason for reason in Reason if not reason.allows]
