"""The resident's own access history (from the audit log)."""

from django.db.models import Q, QuerySet

from access.models import Device, Resident
from audit.actions import Action
from audit.models import AuditEvent
from core.security.identifiers import pseudonymous_ref, user_ref

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
