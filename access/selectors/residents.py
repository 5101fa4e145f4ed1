"""Residents: the one behind an app user, and the buildings one belongs to."""

from django.db.models import Q
from django.utils import timezone

from access.models import AccessGrant, Resident


def resident_of(user) -> Resident | None:
    """The resident profile of an authenticated app user (None for staff and unknown users)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return Resident.objects.filter(user=user).first()


def resident_building_ids(*, resident: Resident, on=None) -> set[int]:
    """Buildings a resident belongs to: their current or future residencies, and the targets
    of their grants that have not expired."""
    on = on or timezone.localdate()
    now = timezone.now()
    from_residencies = resident.residencies.filter(Q(valid_until__isnull=True) | Q(valid_until__gt=on)).values_list(
        "unit__building_id", flat=True
    )
    grants = AccessGrant.objects.held_by(resident.pk).filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
    ids = set(from_residencies)
    for building_id, device_building_id in grants.values_list("building_id", "device__building_id"):
        ids.add(building_id or device_building_id)
    ids.discard(None)
    return ids
