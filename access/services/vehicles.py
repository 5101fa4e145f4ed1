"""Residents' cars: registered by the resident in the app or by a manager in the admin, the same way."""

from django.core.exceptions import ValidationError
from django.db import transaction

from access.models import Resident, Vehicle
from access.plates import InvalidPlate, normalise_plate
from access.search import plate_digest
from access.services.allowlist import allowlist_resident_changed, vehicle_credentials
from access.services.auditing import audit_change, clean_save
from access.services.plate_tokens import vehicle_tokens_refresh
from audit.actions import Action


def _normalised(plate: str) -> str:
    try:
        return normalise_plate(plate)
    except InvalidPlate as exc:
        raise ValidationError({"plate": ValidationError(exc.message, code=exc.code)}) from None


def _audit(vehicle: Vehicle, actor, action: Action, reason: str) -> None:
    audit_change(actor=actor, object_type="vehicle", pk=vehicle.pk, reason=reason, action=action,
                 company_id=vehicle.resident.company_id)


def _allowlists_changed(resident_id: int, before: set, after: set) -> None:
    # Only the partners that knew or now know the car: others' allowlists are unaffected.
    partner_ids = {credential.partner_id for credential in before | after}
    if partner_ids:
        allowlist_resident_changed(resident_id=resident_id, removed=before, partner_ids=partner_ids)


@transaction.atomic
def vehicle_create(*, resident: Resident, plate: str, label: str = "", actor=None) -> Vehicle:
    """Register a resident's car. The plate is normalised (access.plates) and encrypted.

    Checks: a valid Russian plate (ValidationError code from InvalidPlate); no other vehicle
    known to the same partner has the same plate (code "plate_taken"). Writes the plate's search
    digest (access.search). Computes one plate token
    per partner with an active plate contract covering the resident's buildings. Records
    resident.vehicle_create; patches the allowlists of those partners' sites.
    """
    normalised = _normalised(plate)
    vehicle = clean_save(Vehicle(resident=resident, plate=normalised, plate_index=plate_digest(normalised),
                                 label=label))
    vehicle_tokens_refresh(vehicle)
    _audit(vehicle, actor, Action.RESIDENT_VEHICLE_CREATE, "created")
    _allowlists_changed(vehicle.resident_id, set(), vehicle_credentials(vehicle_id=vehicle.pk))
    return vehicle


@transaction.atomic
def vehicle_update(*, vehicle: Vehicle, plate: str | None = None, label: str | None = None, actor=None) -> Vehicle:
    """Change a car's plate and/or label; plate tokens are recomputed. Same checks as
    vehicle_create. Records resident.vehicle_update; a new plate patches the allowlists (the old
    token removed, the new one added)."""
    before = vehicle_credentials(vehicle_id=vehicle.pk)
    if plate is not None:
        vehicle.plate = _normalised(plate)
        vehicle.plate_index = plate_digest(vehicle.plate)
    if label is not None:
        vehicle.label = label
    clean_save(vehicle)
    vehicle_tokens_refresh(vehicle)
    _audit(vehicle, actor, Action.RESIDENT_VEHICLE_UPDATE, "updated")
    after = vehicle_credentials(vehicle_id=vehicle.pk)
    if after != before:
        _allowlists_changed(vehicle.resident_id, before, after)
    return vehicle


@transaction.atomic
def vehicle_delete(*, vehicle: Vehicle, actor=None) -> None:
    """Remove a car and its plate tokens. Records resident.vehicle_delete; patches the
    allowlists (its tokens removed)."""
    before = vehicle_credentials(vehicle_id=vehicle.pk)
    _audit(vehicle, actor, Action.RESIDENT_VEHICLE_DELETE, "deleted")
    resident_id = vehicle.resident_id
    vehicle.delete()
    _allowlists_changed(resident_id, before, set())
