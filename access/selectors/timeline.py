"""Access events of a device or a resident for staff, and who the pseudonymous refs in them are.

The audit log names people by keyed hashes (core.security.identifiers): a resident's app account
as `user:…` when they act, the resident as `resident:…` when a partner decides about their car or
face, staff as `user:…`, partners as `partner:<id>`. Staff of a company may see its residents'
names, so refs are resolved here by computing the refs of the company's residents and staff
(a keyed hash cannot be reversed) - for the staff pages only; partners never get names.

Every read is bounded by company (the (company, time) index of the audit log) and by a window, so
a busy building's timeline stays a short index scan.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from access.models import Device, GuestPass, Resident, StaffMembership, Vehicle
from access.selectors.history import HISTORY_ACTIONS
from audit.actions import Action
from audit.models import AuditEvent
from core.security.identifiers import pseudonymous_ref
from partners.models import Partner

# What a device's timeline shows: decisions at it, opens, video, guest passes for it.
DEVICE_ACTIONS = (
    Action.ACCESS_DECISION, Action.RESIDENT_OPEN, Action.STAFF_OPEN, Action.RESIDENT_VIDEO,
    Action.RESIDENT_GUEST_PASS_CREATE, Action.RESIDENT_GUEST_PASS_REVOKE,
)
# A resident's: their own actions, decisions about them, staff changes to their rows.
RESIDENT_OBJECT_ACTIONS = (
    Action.ADMIN_CHANGE, Action.RESIDENT_GUEST_PASS_CREATE, Action.RESIDENT_GUEST_PASS_REVOKE,
    Action.RESIDENT_VEHICLE_CREATE, Action.RESIDENT_VEHICLE_UPDATE, Action.RESIDENT_VEHICLE_DELETE,
    Action.CONSENT_GIVE, Action.CONSENT_REVOKE, Action.CONSENT_EXPIRE,
)
TIMELINE_WINDOW = timedelta(days=90)
LAST_EVENT_WINDOW = timedelta(days=7)
PAGE_SIZE = 50


def _page(queryset: QuerySet[AuditEvent], *, before=None, now=None) -> list[AuditEvent]:
    """Up to PAGE_SIZE + 1 events older than `before` (an (occurred_at, id) pair), newest first,
    within TIMELINE_WINDOW of now (the extra one says there is an older page)."""
    now = now or timezone.now()
    queryset = queryset.filter(occurred_at__gte=now - TIMELINE_WINDOW)
    if before is not None:
        at, event_id = before
        queryset = queryset.filter(Q(occurred_at__lt=at) | Q(occurred_at=at, id__lt=event_id))
    return list(queryset.order_by("-occurred_at", "-id")[: PAGE_SIZE + 1])


def device_events(*, device: Device, before=None, now=None) -> list[AuditEvent]:
    """The device's events, newest first (a page; see _page)."""
    return _page(
        AuditEvent.objects.filter(company_id=device.building.company_id, building_id=device.building_id,
                                  device_ref=device.partner_device_ref, action__in=DEVICE_ACTIONS),
        before=before, now=now,
    )


def resident_events(*, resident: Resident, before=None, now=None) -> list[AuditEvent]:
    """What the resident did (app), what partners decided about them, and staff changes to the
    resident, their flats, grants, cars and guest passes - newest first (a page; see _page)."""
    object_refs = [f"resident:{resident.pk}"]
    object_refs += [f"vehicle:{pk}" for pk in Vehicle.objects.filter(resident=resident).values_list("pk", flat=True)]
    object_refs += [f"guest_pass:{pk}"
                    for pk in GuestPass.objects.filter(resident=resident).values_list("pk", flat=True)]
    object_refs += [f"residency:{pk}" for pk in resident.residencies.values_list("pk", flat=True)]
    object_refs += [f"grant:{pk}" for pk in resident.grants.values_list("pk", flat=True)]
    mine = (
        Q(actor_ref=pseudonymous_ref("user", resident.user_id), action__in=HISTORY_ACTIONS)
        | Q(subject_ref=pseudonymous_ref("resident", resident.pk), action=Action.ACCESS_DECISION)
        | Q(object_ref__in=object_refs, action__in=RESIDENT_OBJECT_ACTIONS)
    )
    return _page(AuditEvent.objects.filter(mine), before=before, now=now)


def last_events(*, devices: list[Device], now=None) -> dict[int, AuditEvent]:
    """The newest event of each device within LAST_EVENT_WINDOW: {device id: event}."""
    now = now or timezone.now()
    if not devices:
        return {}
    by_key = {(device.building_id, device.partner_device_ref): device for device in devices}
    company_ids = {device.building.company_id for device in devices}
    latest = (
        AuditEvent.objects.filter(company_id__in=company_ids, occurred_at__gte=now - LAST_EVENT_WINDOW,
                                  building_id__in={key[0] for key in by_key},
                                  device_ref__in={key[1] for key in by_key}, action__in=DEVICE_ACTIONS)
        .values("building_id", "device_ref").annotate(last=Max("occurred_at")).order_by()
    )
    wanted = Q(pk__in=[])
    for row in latest:
        wanted |= Q(building_id=row["building_id"], device_ref=row["device_ref"], occurred_at=row["last"])
    found = {}
    for event in AuditEvent.objects.filter(wanted, company_id__in=company_ids, action__in=DEVICE_ACTIONS):
        device = by_key.get((event.building_id, event.device_ref))
        if device is not None and (device.pk not in found or event.id > found[device.pk].id):
            found[device.pk] = event
    return found


@dataclass
class RefNames:
    """Who the refs of some events are, as far as the caller may know."""

    residents: dict[str, Resident] = field(default_factory=dict)  # user:… and resident:… refs
    staff: dict[str, str] = field(default_factory=dict)  # user:… ref -> the staff member's name
    partners: dict[str, str] = field(default_factory=dict)  # partner:<id> -> the partner's name


def ref_names(*, events: list[AuditEvent], company_ids: set[int], with_residents: bool) -> RefNames:
    """Resolve the actor and subject refs of `events` among the companies' residents (only when
    `with_residents`: the caller may see residents), staff and contracted partners."""
    wanted = {event.actor_ref for event in events} | {event.subject_ref for event in events}
    wanted.discard("")
    names = RefNames()
    if with_residents:
        refs_to_id = {}
        for pk, user_id in Resident.objects.filter(company_id__in=company_ids).values_list("pk", "user_id"):
            for ref in (pseudonymous_ref("resident", pk), pseudonymous_ref("user", user_id)):
                if ref in wanted:
                    refs_to_id[ref] = pk
        residents = Resident.objects.prefetch_related("residencies__unit__building").in_bulk(set(refs_to_id.values()))
        names.residents = {ref: residents[pk] for ref, pk in refs_to_id.items() if pk in residents}
    staff_ids = StaffMembership.objects.filter(company_id__in=company_ids).values_list("user_id", flat=True)
    for user in get_user_model().objects.filter(pk__in=staff_ids):
        ref = pseudonymous_ref("user", user.pk)
        if ref in wanted:
            names.staff[ref] = user.get_full_name() or user.get_username()
    partner_ids = {int(ref.split(":", 1)[1]) for ref in wanted if ref.startswith("partner:") and
                   ref.split(":", 1)[1].isdigit()}
    names.partners = {f"partner:{pk}": name for pk, name in
                      Partner.objects.filter(pk__in=partner_ids).values_list("pk", "name")}
    return names
