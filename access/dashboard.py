"""Dashboards in the admin: the caller's companies at a glance, and one page per building.

Two admin views (registered by core.portal.site, so they need a verified 2FA login). The company
page: devices offline, passes and denials per hour by reason, the partners serving the company
(circuit breaker, failed calls, the company's outbox backlog, open security alerts) and every
building with its figures. The building page: the same for one building, plus its devices and
the hourly chart of decisions and remote opens. Charts are SVG drawn on the server from hourly
counts of audit events (core.portal.charts); no script, nothing fetched from elsewhere.
A foreign or unknown building is a 404, like every other object in the admin.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.db.models.functions import TruncHour
from django.http import Http404
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from access.models import Building, Device
from access.reasons import REASON_TEXTS, Reason
from access.selectors.dashboard import decisions_by_hour_and_reason, partner_health, reason_totals
from audit.actions import Action, Outcome
from audit.models import AuditEvent
from core.portal.charts import Bucket, Series, nice_ceiling, stacked_bars
from core.portal.isolation import request_company_ids, scope_to_companies

WINDOW_HOURS = 24
DECISION_ACTIONS = (Action.ACCESS_DECISION,)
# Remote opens residents asked for (the partner's own camera/face opens are access decisions).
OPEN_ACTIONS = (Action.RESIDENT_OPEN,)

# Chart geometry (SVG user units).
CHART_W, CHART_H = 760, 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 12, 16, 34


def _require_view_permission(request):
    if not request.user.has_perm("access.view_building"):
        raise PermissionDenied


def _buildings(request):
    return scope_to_companies(Building.objects.all(), "company", request_company_ids(request))


def building_list(request):
    """The caller's companies: devices offline, decisions by reason per hour, partner health,
    and every building with its device counts and the day's passes and denials."""
    _require_view_permission(request)
    now = timezone.now()
    buildings = list(_buildings(request).select_related("company").annotate(
        devices_online=Count("devices", filter=Q(devices__online=True)),
        devices_offline=Count("devices", filter=Q(devices__online=False)),
    ))
    company_ids = {building.company_id for building in buildings}
    tz = timezone.get_current_timezone()
    day = AuditEvent.objects.filter(company_id__in=company_ids, action=Action.ACCESS_DECISION,
                                    occurred_at__gte=now - timedelta(hours=WINDOW_HOURS))
    per_building = {row["building_id"]: row for row in day.values("building_id").annotate(
        allowed=Count("id", filter=Q(outcome=Outcome.SUCCESS)),
        denied=Count("id", filter=~Q(outcome=Outcome.SUCCESS))).order_by()}
    for building in buildings:
        row = per_building.get(building.pk, {})
        building.allowed_24h, building.denied_24h = row.get("allowed", 0), row.get("denied", 0)
    hours = decisions_by_hour_and_reason(company_ids=company_ids, now=now, tz=tz)
    context = {
        **admin.site.each_context(request),
        "title": _("Dashboard"),
        "buildings": buildings,
        **_overview(hours, now=now),
        "offline_devices": list(Device.objects.filter(building__company_id__in=company_ids, online=False)
                                .select_related("building", "partner").order_by("building__name", "name")),
        **_partner_cards(partner_health(company_ids=company_ids, now=now)),
        "window_hours": WINDOW_HOURS,
    }
    return TemplateResponse(request, "admin/dashboard/building_list.html", context)


def _partner_cards(partners) -> dict:
    return {"partners": partners, "partner_problems": sum(1 for one in partners if not one.healthy),
            "open_alerts": sum(one.open_alerts for one in partners)}


def _overview(hours, *, now) -> dict:
    """The cards and the reasons chart of a dashboard: passes and denials per hour by reason."""
    totals = reason_totals(hours)
    passes = sum(n for reason, n in totals.items() if reason in (Reason.GRANTED, Reason.GUEST_PASS))
    denials = sum(totals.values()) - passes
    buckets = [Bucket(label=hour.strftime("%H:00"), counts=counts) for hour, counts in hours]
    series = [Series(key=reason.value, label=str(REASON_TEXTS[reason])) for reason in Reason]
    top_denials = sorted(((n, reason) for reason, n in totals.items()
                          if reason not in (Reason.GRANTED, Reason.GUEST_PASS)), reverse=True)[:3]
    return {
        "passes_24h": passes,
        "denials_24h": denials,
        "reasons_chart": stacked_bars(buckets, series),
        "top_denials": [{"reason": str(REASON_TEXTS.get(reason, reason)), "n": n} for n, reason in top_denials],
    }


def building_dashboard(request, building_id: int):
    """One building: device states and the hourly decision/open chart for the last 24 h."""
    _require_view_permission(request)
    building = _buildings(request).filter(pk=building_id).select_related("company").first()
    if building is None:
        raise Http404("No such building.")
    devices = list(
        Device.objects.filter(building=building).select_related("partner").order_by("-online", "kind", "name")
    )
    now = timezone.now()
    hours = hourly_counts(building, now=now)
    reason_hours = decisions_by_hour_and_reason(company_ids={building.company_id}, building_id=building.pk,
                                                now=now, tz=building.tz)
    context = {
        **admin.site.each_context(request),
        **_overview(reason_hours, now=now),
        **_partner_cards(partner_health(company_ids={building.company_id}, building_id=building.pk, now=now)),
        "title": _("Dashboard · %(building)s") % {"building": building.name},
        "building": building,
        "devices": devices,
        "devices_online": sum(1 for d in devices if d.online),
        "devices_offline": sum(1 for d in devices if not d.online),
        "totals": {
            "allowed": sum(h.allowed for h in hours),
            "denied": sum(h.denied for h in hours),
            "opens": sum(h.opens for h in hours),
        },
        "chart": bar_chart(hours),
        "window_hours": WINDOW_HOURS,
        "now": now,
    }
    return TemplateResponse(request, "admin/dashboard/building.html", context)


@dataclass
class HourCounts:
    start: object  # aware datetime in the building's time zone
    allowed: int = 0
    denied: int = 0
    opens: int = 0


def hourly_counts(building, *, now) -> list[HourCounts]:
    """Decisions (allowed/denied) and opens per hour of the building's local time, oldest first."""
    tz = building.tz
    current = now.astimezone(tz).replace(minute=0, second=0, microsecond=0)
    hours = [HourCounts(start=current - timedelta(hours=WINDOW_HOURS - 1 - i)) for i in range(WINDOW_HOURS)]
    by_start = {h.start: h for h in hours}
    rows = (
        AuditEvent.objects.filter(
            building_id=building.pk,
            occurred_at__gte=hours[0].start,
            action__in=[*DECISION_ACTIONS, *OPEN_ACTIONS],
        )
        .annotate(hour=TruncHour("occurred_at", tzinfo=tz))
        .values("hour", "action", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        bucket = by_start.get(row["hour"].astimezone(tz))
        if bucket is None:
            continue
        if row["action"] in DECISION_ACTIONS:
            if row["outcome"] == Outcome.SUCCESS:
                bucket.allowed += row["n"]
            else:
                bucket.denied += row["n"]
        elif row["outcome"] == Outcome.SUCCESS:
            bucket.opens += row["n"]
    return hours


def bar_chart(hours: list[HourCounts]) -> dict:
    """Geometry of the SVG chart: per hour a stacked decisions bar (allowed/denied) and an opens bar."""
    plot_w = CHART_W - PAD_LEFT - PAD_RIGHT
    plot_h = CHART_H - PAD_TOP - PAD_BOTTOM
    top = nice_ceiling(max([h.allowed + h.denied for h in hours] + [h.opens for h in hours] + [0]))
    slot = plot_w / len(hours)
    bar_w = slot * 0.36
    baseline = PAD_TOP + plot_h

    def height(count: int) -> float:
        return round(plot_h * count / top, 2)

    bars = []
    for i, hour in enumerate(hours):
        x = PAD_LEFT + i * slot + slot * 0.12
        allowed_h, denied_h, opens_h = height(hour.allowed), height(hour.denied), height(hour.opens)
        label = hour.start.strftime("%H:00")
        bars.append(
            {
                "label": label,
                "show_label": i % 3 == 2 or i == len(hours) - 1,
                "label_x": round(PAD_LEFT + i * slot + slot / 2, 2),
                "allowed": {"x": round(x, 2), "y": round(baseline - allowed_h, 2), "h": allowed_h, "n": hour.allowed},
                "denied": {
                    "x": round(x, 2), "y": round(baseline - allowed_h - denied_h, 2), "h": denied_h, "n": hour.denied,
                },
                "opens": {"x": round(x + bar_w, 2), "y": round(baseline - opens_h, 2), "h": opens_h, "n": hour.opens},
            }
        )
    grid = [
        {"y": round(baseline - plot_h * k / 4, 2), "value": int(top * k / 4)}
        for k in range(5)
    ]
    return {
        "width": CHART_W,
        "height": CHART_H,
        "left": PAD_LEFT,
        "right": CHART_W - PAD_RIGHT,
        "baseline": baseline,
        "label_y": baseline + 18,
        "bar_w": round(bar_w, 2),
        "bars": bars,
        "grid": grid,
        "empty": all(h.allowed + h.denied + h.opens == 0 for h in hours),
    }
