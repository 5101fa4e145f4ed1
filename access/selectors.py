"""Reads of the access app, already scoped to the caller."""

from django.db.models import Q, QuerySet
from django.utils import timezone

from access.models import AccessGrant, Building, Device, Resident, StaffMembership, Vehicle, VehiclePlateToken
from core.security.tenancy import company_ids_for_user as _visible_company_ids


def company_ids_for_user(user) -> set[int]:
    """Management companies a staff user belongs to (through StaffMembership).

    This is the COMPANY_RESOLVER behind core.security.tenancy.company_ids_for_user, which adds the
    superuser rule; call that one, not this, when scoping.
    """
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return set()
    return set(StaffMembership.objects.filter(user=user).values_list("company_id", flat=True))


def _scoped(queryset: QuerySet, user, path: str | tuple[str, ...]) -> QuerySet:
    ids = _visible_company_ids(user)
    if ids is None:
        return queryset
    condition = Q()
    for one in (path,) if isinstance(path, str) else path:
        condition |= Q(**{f"{one}__in": ids})
    return queryset.filter(condition)


def buildings_for_user(*, user) -> QuerySet[Building]:
    return _scoped(Building.objects.select_related("company"), user, "company_id")


def residents_for_user(*, user) -> QuerySet[Resident]:
    return _scoped(Resident.objects.all(), user, "company_id")


def devices_for_user(*, user) -> QuerySet[Device]:
    return _scoped(Device.objects.select_related("building", "partner"), user, "building__company_id")


def grants_for_user(*, user) -> QuerySet[AccessGrant]:
    return _scoped(
        AccessGrant.objects.select_related("building", "device__building"),
        user,
        ("building__company_id", "device__building__company_id"),
    )


def resident_building_ids(*, resident: Resident, on=None) -> set[int]:
    """Buildings a resident belongs to: their current or future residencies, and the targets
    of their grants that have not expired."""
    on = on or timezone.localdate()
    now = timezone.now()
    from_residencies = resident.residencies.filter(Q(valid_until__isnull=True) | Q(valid_until__gt=on)).values_list(
        "unit__building_id", flat=True
    )
    grants = AccessGrant.objects.filter(Q(resident=resident) | Q(residency__resident=resident)).filter(
        Q(valid_until__isnull=True) | Q(valid_until__gt=now)
    )
    ids = set(from_residencies)
    for building_id, device_building_id in grants.values_list("building_id", "device__building_id"):
        ids.add(building_id or device_building_id)
    ids.discard(None)
    return ids


def resident_for_user(*, user) -> Resident | None:
    """The resident profile of an app user (None for staff or unknown users)."""
    return Resident.objects.filter(user=user).first() if user is not None and user.is_authenticated else None


def vehicles_of(*, resident: Resident) -> QuerySet[Vehicle]:
    return Vehicle.objects.filter(resident=resident).order_by("id")


def vehicle_by_plate_token(*, partner_id: int, token: str) -> Vehicle | None:
    """The vehicle a partner's plate token stands for (None if unknown)."""
    row = (
        VehiclePlateToken.objects.select_related("vehicle__resident")
        .filter(partner_id=partner_id, token=token)
        .first()
    )
    return row.vehicle if row else None
