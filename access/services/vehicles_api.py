"""The resident's own cars through the API: the domain services of access.services, acting as
the resident. Each change then enqueues the full allowlist of every site (building) of the
resident whose partner recognises plates (access.services.allowlist, through the outbox), so a
partner's offline allowlist learns the new plate token or forgets the old one."""

from __future__ import annotations

from django.db import transaction

from access.models import Resident, Vehicle
from access.selectors import resident_building_ids
from access.services import vehicle_create, vehicle_delete, vehicle_update
from access.services.allowlist import allowlist_push_full
from partners.selectors import partners_covering_building_ids


def _push_allowlists(resident: Resident, building_ids: set[int]) -> None:
    covering = partners_covering_building_ids(building_ids=building_ids, operation="plate")
    for partner_id, buildings in sorted(covering.items()):
        for building_id in sorted(buildings):
            allowlist_push_full(partner_id=partner_id, building_id=building_id)


@transaction.atomic
def resident_vehicle_create(*, user, resident: Resident, plate: str, label: str = "") -> Vehicle:
    """Add a car of the resident (checks and audit of access.services.vehicle_create); enqueues
    the allowlists of the resident's plate-recognising sites."""
    vehicle = vehicle_create(resident=resident, plate=plate, label=label, actor=user)
    _push_allowlists(resident, resident_building_ids(resident=resident))
    return vehicle


@transaction.atomic
def resident_vehicle_update(*, user, vehicle: Vehicle, plate: str | None = None, label: str | None = None) -> Vehicle:
    """Change one of the resident's cars (access.services.vehicle_update); a new plate enqueues
    the allowlists."""
    vehicle = vehicle_update(vehicle=vehicle, plate=plate, label=label, actor=user)
    if plate is not None:
        _push_allowlists(vehicle.resident, resident_building_ids(resident=vehicle.resident))
    return vehicle


@transaction.atomic
def resident_vehicle_delete(*, user, vehicle: Vehicle) -> None:
    """Remove one of the resident's cars (access.services.vehicle_delete); enqueues the allowlists."""
    resident = vehicle.resident
    building_ids = resident_building_ids(resident=resident)
    vehicle_delete(vehicle=vehicle, actor=user)
    _push_allowlists(resident, building_ids)
