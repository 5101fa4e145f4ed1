"""The resident's own cars through the API: the domain services of access.services, acting as
the resident. Those services also patch the partners' offline allowlists (an incremental
`allowlist_patch` through the outbox, see access.services.allowlist), so a partner learns a new
plate token or forgets the old one exactly as when a manager changes the car in the admin."""

from __future__ import annotations

from django.db import transaction

from access.models import Resident, Vehicle
from access.services import vehicle_create, vehicle_delete, vehicle_update


@transaction.atomic
def resident_vehicle_create(*, user, resident: Resident, plate: str, label: str = "") -> Vehicle:
    """Add a car of the resident (checks, audit and allowlist patches of access.services.vehicle_create)."""
    return vehicle_create(resident=resident, plate=plate, label=label, actor=user)


@transaction.atomic
def resident_vehicle_update(*, user, vehicle: Vehicle, plate: str | None = None, label: str | None = None) -> Vehicle:
    """Change one of the resident's cars (access.services.vehicle_update; a new plate patches the allowlists)."""
    return vehicle_update(vehicle=vehicle, plate=plate, label=label, actor=user)


@transaction.atomic
def resident_vehicle_delete(*, user, vehicle: Vehicle) -> None:
    """Remove one of the resident's cars (access.services.vehicle_delete; its tokens leave the allowlists)."""
    vehicle_delete(vehicle=vehicle, actor=user)
