"""The resident's cars."""

from django.db.models import QuerySet

from access.errors import NotFound
from access.models import Resident, Vehicle


def vehicles_for_resident(*, resident: Resident | None) -> QuerySet[Vehicle]:
    if resident is None:
        return Vehicle.objects.none()
    return Vehicle.objects.filter(resident=resident).order_by("id")


def vehicle_for_resident(*, resident: Resident | None, vehicle_id: int) -> Vehicle:
    """One of the resident's cars, else NotFound."""
    vehicle = vehicles_for_resident(resident=resident).filter(pk=vehicle_id).first()
    if vehicle is None:
        raise NotFound(vehicle_id)
    return vehicle
