"""Reads of the resident API: what a resident may see, and the object rules of every request.

Visibility ("is this yours?") and permission ("may you do it now?") are separate on purpose:

- a device is *yours* if you hold any grant covering it (personally or through a residency,
  for its building or for the device itself), whatever the grant's state; anything else is
  404, exactly like a device that does not exist, so ids of other residents' or other
  companies' devices leak nothing;
- on a device that is yours, a failed rule is 403 with a reason code the app can explain:
  ``resident-suspended``, ``grant-suspended``, ``grant-expired``, ``grant-not-yet-valid``,
  ``outside-schedule``, ``contract-not-covering`` (no active contract of the device's partner
  over the building allowing the operation, or the partner is suspended).

`GET devices` lists only devices you hold an *active* grant for (valid now, not suspended).
"""

from __future__ import annotations

import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone
from rest_framework import exceptions

from access.models import AccessGrant, Device, GuestPass, Notification, Resident, Vehicle
from access.schedules import schedule_allows
from audit.actions import Action
from audit.models import AuditEvent
from core.api.resident import RESIDENT_SUSPENDED_DETAIL
from core.security.identifiers import pseudonymous_ref, user_ref
from partners.selectors import contract_covering


class ResidentRuleDenied(exceptions.PermissionDenied):
    """403 problem `/problems/<reason>` for a rule that fails on one of the resident's objects."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.problem_code = reason
        self.problem_extra = {"reason": reason}


_DETAILS = {
    "resident-suspended": RESIDENT_SUSPENDED_DETAIL,
    "grant-suspended": "Your access to this device is suspended.",
    "grant-expired": "Your access to this device has expired.",
    "grant-not-yet-valid": "Your access to this device has not started yet.",
    "outside-schedule": "Your access to this device is not valid at this time of day.",
    "contract-not-covering": "This operation is not available for this device.",
}


def resident_of(user) -> Resident | None:
    """The resident profile of an authenticated app user (None for staff and unknown users)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return Resident.objects.filter(user=user).first()


def grants_of(*, resident: Resident) -> QuerySet[AccessGrant]:
    return AccessGrant.objects.filter(Q(resident=resident) | Q(residency__resident=resident))


def _active(grants: QuerySet[AccessGrant], at: datetime.datetime) -> QuerySet[AccessGrant]:
    return grants.filter(valid_from__lte=at, suspended=False).filter(
        Q(valid_until__isnull=True) | Q(valid_until__gt=at)
    )


def _covering(grants: QuerySet[AccessGrant], device: Device) -> QuerySet[AccessGrant]:
    return grants.filter(Q(device=device) | Q(building_id=device.building_id))


def devices_for_resident(*, resident: Resident | None, at=None) -> QuerySet[Device]:
    """Devices the resident holds an active grant for (building-wide or for the device)."""
    if resident is None:
        return Device.objects.none()
    active = _active(grants_of(resident=resident), at or timezone.now())
    condition = Q(pk__in=active.filter(device__isnull=False).values("device_id")) | Q(
        building_id__in=active.filter(building__isnull=False).values("building_id")
    )
    return Device.objects.select_related("building", "partner").filter(condition).order_by("id")


def device_for_resident(*, resident: Resident | None, device_id: int) -> Device:
    """A device that is the resident's (any grant covers it), else NotFound (404)."""
    device = Device.objects.select_related("building", "partner").filter(pk=device_id).first()
    if device is None or resident is None or not _covering(grants_of(resident=resident), device).exists():
        raise exceptions.NotFound()
    return device


def device_rule_failure(*, resident: Resident, device: Device, operation: str, at=None) -> str | None:
    """The first failing rule's reason code for `operation` ("open" | "video" | "plate") on one of
    the resident's devices now, or None if every rule holds (see the module docstring)."""
    at = at or timezone.now()
    if resident.suspended:
        return "resident-suspended"
    grants = list(_covering(grants_of(resident=resident), device))
    current = [g for g in grants if g.valid_from <= at and (g.valid_until is None or at < g.valid_until)]
    if not current:
        return "grant-not-yet-valid" if any(g.valid_from > at for g in grants) else "grant-expired"
    unsuspended = [g for g in current if not g.suspended]
    if not unsuspended:
        return "grant-suspended"
    local = at.astimezone(device.building.tz)
    if not any(schedule_allows(g.schedule, local) for g in unsuspended):
        return "outside-schedule"
    if not device.partner.is_usable or contract_covering(
        partner_id=device.partner_id, building_id=device.building_id, operation=operation, at=at
    ) is None:
        return "contract-not-covering"
    return None


def rule_denied(reason: str) -> ResidentRuleDenied:
    return ResidentRuleDenied(reason, _DETAILS[reason])


def vehicles_for_resident(*, resident: Resident | None) -> QuerySet[Vehicle]:
    if resident is None:
        return Vehicle.objects.none()
    return Vehicle.objects.filter(resident=resident).order_by("id")


def vehicle_for_resident(*, resident: Resident | None, vehicle_id: int) -> Vehicle:
    vehicle = vehicles_for_resident(resident=resident).filter(pk=vehicle_id).first()
    if vehicle is None:
        raise exceptions.NotFound()
    return vehicle


def guest_passes_for_resident(*, resident: Resident | None) -> QuerySet[GuestPass]:
    if resident is None:
        return GuestPass.objects.none()
    return GuestPass.objects.select_related("device").filter(resident=resident).order_by("-created_at", "-id")


def guest_pass_for_resident(*, resident: Resident | None, pass_id: int) -> GuestPass:
    guest_pass = guest_passes_for_resident(resident=resident).filter(pk=pass_id).first()
    if guest_pass is None:
        raise exceptions.NotFound()
    return guest_pass


def guest_passes_active_count(*, resident: Resident, at=None) -> int:
    at = at or timezone.now()
    return GuestPass.objects.filter(
        resident=resident, revoked_at__isnull=True, used_at__isnull=True, valid_until__gt=at
    ).count()


def guest_pass_for_plate_token(*, device: Device, token: str, at=None) -> GuestPass | None:
    """The active guest pass for a plate token (the device's partner's token) at a barrier, for the
    access decision code; None if there is none."""
    at = at or timezone.now()
    return (
        GuestPass.objects.select_related("resident")
        .filter(device=device, plate_token=token, revoked_at__isnull=True, used_at__isnull=True,
                valid_from__lte=at, valid_until__gt=at, resident__suspended=False)
        .order_by("valid_until")
        .first()
    )


HISTORY_ACTIONS = (
    Action.RESIDENT_OPEN,
    Action.RESIDENT_VIDEO,
    Action.RESIDENT_VEHICLE_CREATE,
    Action.RESIDENT_VEHICLE_UPDATE,
    Action.RESIDENT_VEHICLE_DELETE,
    Action.RESIDENT_GUEST_PASS_CREATE,
    Action.RESIDENT_GUEST_PASS_REVOKE,
)


def history_for_resident(
    *, user, resident: Resident | None, since=None, until=None, device: Device | None = None
) -> QuerySet[AuditEvent]:
    """The resident's own access events, newest first: what they did (actor = their pseudonymous
    ref) and partners' access decisions about them - their cars, their face, their guests' passes
    (subject = their pseudonymous resident ref). Never other residents' events."""
    mine = Q(actor_ref=user_ref(user), action__in=HISTORY_ACTIONS)
    if resident is not None:
        mine |= Q(subject_ref=pseudonymous_ref("resident", resident.pk), action=Action.ACCESS_DECISION)
    queryset = AuditEvent.objects.filter(mine)
    if since is not None:
        queryset = queryset.filter(occurred_at__gte=since)
    if until is not None:
        queryset = queryset.filter(occurred_at__lt=until)
    if device is not None:
        queryset = queryset.filter(device_ref=device.partner_device_ref, building_id=device.building_id)
    return queryset.order_by("-occurred_at", "-id")


def notifications_for_resident(*, resident: Resident | None, unread: bool | None = None) -> QuerySet[Notification]:
    if resident is None:
        return Notification.objects.none()
    queryset = Notification.objects.filter(resident=resident)
    if unread is not None:
        queryset = queryset.filter(read_at__isnull=unread)
    return queryset.order_by("-occurred_at", "-id")


def notification_for_resident(*, resident: Resident | None, notification_id: int) -> Notification:
    notification = notifications_for_resident(resident=resident).filter(pk=notification_id).first()
    if notification is None:
        raise exceptions.NotFound()
    return notification
