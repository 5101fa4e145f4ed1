"""The resident's devices.

Visibility ("is this yours?") and permission ("may you do it now?") are separate on purpose: a
device is *yours* if you hold any grant covering it (personally or through a residency, for its
building or for the device itself), whatever the grant's state; anything else is DeviceNotFound
(404), exactly like a device that does not exist, so ids of other residents' or other
companies' devices leak nothing. Whether you may use it now is access.policy's answer.
"""

from django.db.models import Q, QuerySet
from django.utils import timezone

from access.errors import DeviceNotFound
from access.models import AccessGrant, Device, Resident
from access.policy import grant_failure


def devices_for_resident(*, resident: Resident | None, at=None) -> QuerySet[Device]:
    """Devices the resident holds a grant in force for (access.policy.grant_failure, the weekly
    schedule aside: a device usable at some hours is listed), building-wide or for the device."""
    if resident is None:
        return Device.objects.none()
    at = at or timezone.now()
    building_ids, device_ids = set(), set()
    grants = AccessGrant.objects.held_by(resident.pk).select_related("residency", "building", "device__building")
    for grant in grants.filter(valid_from__lte=at, suspended=False).filter(
        Q(valid_until__isnull=True) | Q(valid_until__gt=at)
    ):
        if grant_failure(grant, at, at.astimezone(grant.target_building.tz), schedule=False) is None:
            (building_ids if grant.building_id else device_ids).add(grant.building_id or grant.device_id)
    return (
        Device.objects.select_related("building", "partner")
        .filter(Q(pk__in=device_ids) | Q(building_id__in=building_ids))
        .order_by("id")
    )


def device_for_resident(*, resident: Resident | None, device_id: int) -> Device:
    """A device that is the resident's (any grant covers it), else DeviceNotFound."""
    device = Device.objects.select_related("building", "partner").filter(pk=device_id).first()
    if device is None or resident is None or not AccessGrant.objects.held_by(resident.pk).covering(device).exists():
        raise DeviceNotFound(device_id)
    return device
