"""Residents: the one behind an app user, and the buildings one belongs to."""

from django.db.models import Q
from django.utils import timezone

from access.models import AccessGrant, Residency, Resident


def resident_of(user) -> Resident | None:
    """The resident profile of an authenticated app user (None for staff and unknown users)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return Resident.objects.filter(user=user).first()


def resident_building_ids(*, resident: Resident, on=None) -> set[int]:
    """Buildings a resident belongs to: their current or future residencies, and the targets
    of their grants that have not expired."""
    return residents_building_ids(resident_ids=[resident.pk], on=on).get(resident.pk, set())


def residents_building_ids(*, resident_ids, on=None) -> dict[int, set[int]]:
    """`resident_building_ids` of many residents at once: {resident id: building ids} (a resident
    who belongs nowhere is left out)."""
    on = on or timezone.localdate()
    now = timezone.now()
    resident_ids = list(resident_ids)
    ids: dict[int, set[int]] = {}
    for resident_id, building_id in Residency.objects.filter(
        Q(valid_until__isnull=True) | Q(valid_until__gt=on), resident_id__in=resident_ids
    ).values_list("resident_id", "unit__building_id"):
        ids.setdefault(resident_id, set()).add(building_id)
    grants = AccessGrant.objects.filter(Q(resident_id__in=resident_ids) | Q(residency__resident_id__in=resident_ids))
    for holder, via_residency, building_id, device_building_id in grants.filter(
        Q(valid_until__isnull=True) | Q(valid_until__gt=now)
    ).values_list("resident_id", "residency__resident_id", "building_id", "device__building_id"):
        if building_id or device_building_id:
            ids.setdefault(holder or via_residency, set()).add(building_id or device_building_id)
    return ids
