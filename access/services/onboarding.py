"""Many flats, residents, residencies and cars at once: the bulk form of `unit_create`,
`resident_create`, `residency_create` (with an optional move-in grant: `grant_create`) and
`vehicle_create`, for master-data imports (a complex of thousands of flats taken over in minutes).

The same checks and the same writes as the one-row services, with a fixed number of queries per
call instead of per row (the rows go in by COPY: core.copy_insert): every row is validated (its
fields, and the cross-row checks the one-row service makes: a flat of another company, dates in
order, a plate valid and not taken at a partner), encrypted, indexed for the admin's search (and,
through `access.signals.residents_created`, for sign-in by phone or e-mail), its plate tokens
computed, its audit event (the one-row service's action and reason) and its admin history entry
(django-auditlog) written, and its allowlist change reported through `allowlist_resident_changed` -
inside `access.services.allowlist.allowlist_batch`, one patch per (partner, site) for the whole
batch.

Each function returns, per input in order, the saved row or the ValidationError that kept it out;
the valid rows are written whatever the others did. A row the checks passed but the database
refuses (a concurrent writer took the same plate) raises IntegrityError for the whole call: the
caller applies those rows one by one instead. Call inside a transaction.
"""

import datetime
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from access.models import (
    AccessGrant,
    Building,
    ManagementCompany,
    Residency,
    Resident,
    ResidentSearchTerm,
    Unit,
    Vehicle,
    VehiclePlateToken,
)
from access.plates import InvalidPlate, normalise_plate
from access.search import plate_digest, resident_digests
from access.selectors.residents import residents_building_ids
from access.services.allowlist import allowlist_resident_changed
from access.services.auditing import audit_changes, change_event
from access.services.plate_tokens import plate_tokens_under, resident_tokens_refresh
from access.signals import residents_created
from audit.actions import Action
from audit.actors import actor_fields
from core.copy_insert import copy_create, copy_values
from core.portal.auditlog_mask import log_created
from core.security.identifiers import pseudonymous_ref
from partners.selectors import partners_covering_building_ids, plate_keys_in_use

Outcome = list  # per input, in order: the saved row or its ValidationError


def _field_errors(obj, exclude=()) -> ValidationError | None:
    """The row's field validation (lengths, choices, validators) without database round trips:
    uniqueness and constraints are checked by the caller in bulk, and by the database."""
    try:
        obj.full_clean(exclude=list(exclude), validate_unique=False, validate_constraints=False)
    except ValidationError as invalid:
        return invalid
    return None


@dataclass(frozen=True)
class NewUnit:
    building: Building
    number: str


@transaction.atomic
def units_create_many(*, units: list[NewUnit], actor=None) -> Outcome:
    """`unit_create` for many flats. Checks: field validation, the number unique in its building
    (stored, or an earlier flat of this call: code "unique"). Records admin.change "created"."""
    taken = set(Unit.objects.filter(building_id__in={spec.building.pk for spec in units})
                .values_list("building_id", "number"))
    results: Outcome = []
    valid: list[Unit] = []
    for spec in units:
        unit = Unit(building=spec.building, number=spec.number)
        invalid = _field_errors(unit, exclude=["building"])
        if invalid is None and (spec.building.pk, spec.number) in taken:
            invalid = ValidationError({"number": ValidationError(
                gettext("This building already has a flat with this number."), code="unique")})
        results.append(invalid or unit)
        if invalid is None:
            taken.add((spec.building.pk, spec.number))
            valid.append(unit)
    copy_create(valid)
    who = actor_fields(actor)
    audit_changes([change_event(actor_fields_=who, object_type="unit", pk=unit.pk, reason="created",
                                company_id=unit.building.company_id, building_id=unit.building_id) for unit in valid])
    log_created(valid)
    return results


@dataclass(frozen=True)
class NewResident:
    company: ManagementCompany
    full_name: str
    phone: str = ""
    email: str = ""


@transaction.atomic
def residents_create_many(*, people: list[NewResident], actor=None) -> Outcome:
    """`resident_create` for many people: each gets a new app user (a random "r-..." handle, no
    usable password, no personal data). Checks: field validation. Writes the admin's search
    digests; records admin.change "created" with each resident's pseudonymous ref; sends
    `residents_created`."""
    User = get_user_model()
    results: Outcome = []
    valid: list[Resident] = []
    for person in people:
        resident = Resident(company=person.company, full_name=person.full_name, phone=person.phone,
                            email=person.email)
        invalid = _field_errors(resident, exclude=["user", "company"])
        results.append(invalid or resident)
        if invalid is None:
            valid.append(resident)
    if not valid:
        return results
    users = copy_create([User(username=f"r-{secrets.token_hex(6)}", password=make_password(None)) for _ in valid])
    for resident, user in zip(valid, users, strict=True):
        resident.user = user
    copy_create(valid)
    copy_values(ResidentSearchTerm, fields=["resident_id", "digest"], rows=(
        (resident.pk, digest) for resident in valid
        for digest in sorted(resident_digests(full_name=resident.full_name, phone=resident.phone, email=resident.email))
    ))
    who = actor_fields(actor)
    audit_changes([
        change_event(actor_fields_=who, object_type="resident", pk=resident.pk, reason="created",
                     company_id=resident.company_id, object_ref=pseudonymous_ref("resident", resident.pk))
        for resident in valid
    ])
    log_created(valid)
    residents_created.send(sender=Resident, residents=valid)
    return results


@dataclass(frozen=True)
class NewResidency:
    resident: Resident
    unit: Unit  # with its building loaded
    kind: str
    valid_from: datetime.date
    valid_until: datetime.date | None = None
    grant: bool = False  # also grant the whole building, held through the residency (ends with it)


def move_in_grant_start(valid_from: datetime.date, building: Building) -> datetime.datetime:
    """When a move-in grant starts: the residency's first day in the building's time (not before
    now for a residency that has already started, so the grant is valid at once)."""
    start = datetime.datetime.combine(valid_from, datetime.time.min, tzinfo=building.tz)
    return min(start, timezone.now()) if valid_from <= timezone.localdate() else start


@transaction.atomic
def residencies_create_many(*, residencies: list[NewResidency], actor=None) -> Outcome:
    """`residency_create` for many: each links a resident to a flat. Checks: the flat's building
    belongs to the resident's company, dates in order, field validation. Records admin.change
    "created"; recomputes the plate tokens of residents who already have cars. With `grant`, also
    `grant_create` of a grant for the flat's whole building held through the residency, from the
    residency's first day (records its admin.change, reports the allowlist change)."""
    results: Outcome = []
    valid: list[tuple[Residency, NewResidency]] = []
    for spec in residencies:
        residency = Residency(resident=spec.resident, unit=spec.unit, kind=spec.kind, valid_from=spec.valid_from,
                              valid_until=spec.valid_until)
        invalid = _field_errors(residency, exclude=["resident", "unit"])
        if invalid is None and spec.unit.building.company_id != spec.resident.company_id:
            invalid = ValidationError({"unit": gettext("The flat belongs to another management company.")})
        if invalid is None and spec.valid_until is not None and spec.valid_until <= spec.valid_from:
            invalid = ValidationError(gettext("A residency must end after it starts."),
                                      code="residency_valid_until_after")
        results.append(invalid or residency)
        if invalid is None:
            valid.append((residency, spec))
    if not valid:
        return results
    copy_create([residency for residency, _ in valid])
    who = actor_fields(actor)
    events = [
        change_event(actor_fields_=who, object_type="residency", pk=residency.pk, reason="created",
                     company_id=spec.resident.company_id, building_id=spec.unit.building_id)
        for residency, spec in valid
    ]
    log_created([residency for residency, _ in valid])
    with_cars = set(Vehicle.objects.filter(resident_id__in={spec.resident.pk for _, spec in valid})
                    .values_list("resident_id", flat=True))
    for resident in {spec.resident.pk: spec.resident for _, spec in valid if spec.resident.pk in with_cars}.values():
        resident_tokens_refresh(resident)
    grants = [
        AccessGrant(residency=residency, building=spec.unit.building, created_by=actor,
                    valid_from=move_in_grant_start(spec.valid_from, spec.unit.building))
        for residency, spec in valid if spec.grant
    ]
    copy_create(grants)
    events += [
        change_event(actor_fields_=who, object_type="grant", pk=grant.pk, reason="created",
                     company_id=grant.building.company_id, building_id=grant.building_id)
        for grant in grants
    ]
    audit_changes(events)
    log_created(grants)
    for grant in grants:
        allowlist_resident_changed(resident_id=grant.residency.resident_id, building_ids={grant.building_id})
    return results


@dataclass(frozen=True)
class NewVehicle:
    resident: Resident
    plate: str
    label: str = ""


@transaction.atomic
def vehicles_create_many(*, vehicles: list[NewVehicle], actor=None) -> Outcome:
    """`vehicle_create` for many cars. Checks: a valid Russian plate (the InvalidPlate code),
    field validation, and no two vehicles with the same plate at a partner - neither one stored
    nor an earlier one of this call (code "plate_taken"). The plate is normalised and encrypted,
    its search digest written, one plate token computed per partner with an active plate
    contract covering the resident's buildings. Records resident.vehicle_create "created";
    reports the allowlist change of the partners that know the car."""
    results: Outcome = []
    candidates: list[tuple[int, Vehicle]] = []
    for position, spec in enumerate(vehicles):
        try:
            plate = normalise_plate(spec.plate)
        except InvalidPlate as exc:
            results.append(ValidationError({"plate": ValidationError(exc.message, code=exc.code)}))
            continue
        vehicle = Vehicle(resident=spec.resident, plate=plate, plate_index=plate_digest(plate), label=spec.label)
        invalid = _field_errors(vehicle, exclude=["resident"])
        results.append(invalid or vehicle)
        if invalid is None:
            candidates.append((position, vehicle))
    if not candidates:
        return results
    tokens = _plate_tokens([vehicle for _, vehicle in candidates])
    taken = set(VehiclePlateToken.objects.filter(
        token__in={token for wanted in tokens.values() for token in wanted.values()}
    ).values_list("partner_id", "token"))
    valid = []
    for position, vehicle in candidates:
        wanted = {(partner_id, token) for (partner_id, _), token in tokens[id(vehicle)].items()}
        if wanted & taken:
            results[position] = ValidationError(
                {"plate": ValidationError(gettext("This plate is already registered to another vehicle."),
                                          code="plate_taken")}
            )
            continue
        taken |= wanted
        valid.append(vehicle)
    copy_create(valid)
    copy_create(
        [VehiclePlateToken(vehicle=vehicle, partner_id=partner_id, key_version=version, token=token)
         for vehicle in valid for (partner_id, version), token in tokens[id(vehicle)].items()],
    )
    who = actor_fields(actor)
    audit_changes([
        change_event(actor_fields_=who, object_type="vehicle", pk=vehicle.pk, reason="created",
                     action=Action.RESIDENT_VEHICLE_CREATE, company_id=vehicle.resident.company_id)
        for vehicle in valid
    ])
    log_created(valid)
    for vehicle in valid:
        if tokens[id(vehicle)]:  # only the partners that now know the car
            allowlist_resident_changed(resident_id=vehicle.resident_id,
                                       partner_ids={partner_id for partner_id, _ in tokens[id(vehicle)]})
    return results


def _plate_tokens(vehicles: list[Vehicle]) -> dict[int, dict[tuple[int, int], str]]:
    """{id(vehicle): {(partner id, key version): token}}: the tokens `vehicle_tokens_refresh` would
    compute (under every plate-token key each partner's decisions accept)."""
    buildings = residents_building_ids(resident_ids={vehicle.resident_id for vehicle in vehicles})
    covering = partners_covering_building_ids(building_ids={b for ids in buildings.values() for b in ids},
                                              operation="plate")
    keys = plate_keys_in_use(partner_ids=covering)
    tokens = {}
    for vehicle in vehicles:
        mine = buildings.get(vehicle.resident_id, set())
        seen_by = {partner_id: keys[partner_id] for partner_id, covered in covering.items()
                   if covered & mine and partner_id in keys}
        tokens[id(vehicle)] = plate_tokens_under(plate=vehicle.plate, keys=seen_by)
    return tokens
