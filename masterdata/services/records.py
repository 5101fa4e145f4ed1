"""Apply a source system's records: idempotent upserts and deletions by external id and version.

`records_apply` takes a batch (up to MASTERDATA_BATCH_MAX records), validates every record, and
applies the valid ones by type in dependency order (companies, buildings, flats, residents,
residencies, cars; each type in the order given), in chunks of MASTERDATA_CHUNK_SIZE whose
external ids are looked up together. New flats, residents, residencies and cars of a chunk are written
together by the bulk services of access.services.onboarding (the same checks and records as
`unit_create`, `resident_create`, `residency_create`, `vehicle_create`); every other record - a
change, a deletion, a company or building - is applied in its own savepoint through the one-row
services the admin uses (`resident_update`, `residency_update` - a move-out -, `resident_delete`,
...). So their checks, audit events, plate tokens, consent revocations and allowlist patches
follow as they do in the admin; a record that fails is reported with its field errors and the
others go ahead. The whole batch is one transaction and one
`allowlist_batch`: each (partner, site) gets one allowlist patch for the batch, not one per
record.

Versions: a record older than the version stored is `stale` (not applied), the same version is
`unchanged` (a repeated batch changes nothing), a newer one is applied (`created`, `updated`,
`deleted`, or `unchanged` when it changes no field). A deletion leaves a tombstone, so an older
upsert arriving after it is still recognised as stale.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from access.models import Building, ManagementCompany, Residency, Resident, Unit, Vehicle
from access.plates import InvalidPlate, normalise_plate
from access.services.allowlist import allowlist_batch
from access.services.companies import (
    building_create,
    building_update,
    company_create,
    company_update,
    unit_create,
    unit_update,
)
from access.services.grants import grant_create
from access.services.onboarding import (
    NewResidency,
    NewResident,
    NewUnit,
    NewVehicle,
    move_in_grant_start,
    residencies_create_many,
    residents_create_many,
    units_create_many,
    vehicles_create_many,
)
from access.services.residencies import residency_create, residency_delete, residency_update
from access.services.residents import resident_create, resident_delete, resident_update
from access.services.vehicles import vehicle_create, vehicle_delete, vehicle_update
from audit.actions import Action, Outcome
from audit.services import record
from core.copy_insert import copy_create
from core.http.problems import flatten_errors
from identity.contacts import PHONE, contact_digest, contacts_taken, resident_ids_with
from masterdata.models import APPLY_ORDER, Entity, ExternalRef
from masterdata.records import parse_record, version_of

RESULTS = ("created", "updated", "unchanged", "stale", "deleted", "error")


@dataclass
class RecordResult:
    """The outcome of one record: `result` one of RESULTS; `errors` [{field, code, detail}]."""

    index: int
    type: str
    id: str
    result: str
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        answer = {"index": self.index, "type": self.type, "id": self.id, "result": self.result}
        if self.errors:
            answer["errors"] = self.errors
        return answer


@dataclass
class BatchOutcome:
    results: list[RecordResult]
    allowlist_patches: int = 0

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(result.result for result in self.results)
        return {name: counted.get(name, 0) for name in RESULTS}


class RecordRefused(Exception):
    """A record that cannot be applied; `errors` in DRF's shape ({field: [ErrorDetail or str]})."""

    def __init__(self, field_name: str, code: str, detail: str):
        super().__init__(detail)
        self.errors = [{"field": field_name, "code": code, "detail": detail}]


@dataclass
class _Context:
    source: str
    allowed_company_ids: set[int]
    allowed_companies: frozenset[str]  # the source's ids of the companies that may be written
    actor: object
    refs: dict[tuple[str, str], ExternalRef] = field(default_factory=dict)
    phones_claimed: dict[str, str] = field(default_factory=dict)  # phone -> resident external id

    def load_refs(self, keys: set[tuple[str, str]]) -> None:
        missing = {key for key in keys if key not in self.refs}
        by_entity: dict[str, set[str]] = {}
        for entity, external in missing:
            by_entity.setdefault(entity, set()).add(external)
        for entity, externals in by_entity.items():
            for ref in ExternalRef.objects.filter(source=self.source, entity=entity, external_id__in=externals):
                self.refs[(entity, ref.external_id)] = ref

    def live(self, entity: str, external: str, field_name: str) -> int:
        """Our id of a record the source sent before and has not deleted (else refused)."""
        ref = self.refs.get((entity, external))
        if ref is None:
            self.load_refs({(entity, external)})
            ref = self.refs.get((entity, external))
        if ref is None or ref.deleted:
            raise RecordRefused(field_name, "unknown_reference", f"No {entity} with this id has been received.")
        return ref.object_id

    def check_company(self, company_id: int, field_name: str) -> None:
        if company_id not in self.allowed_company_ids:
            raise RecordRefused(field_name, "company_not_allowed",
                                "This client may not write data of that management company.")


def records_apply(*, source: str, companies: Iterable[str], records: list, actor=None,
                  actor_ref: str = "") -> BatchOutcome:
    """Apply `records` (parsed JSON values) from `source` for a client that may write the
    management companies whose source ids are `companies` (see the module docstring).

    One transaction; returns the per-record results in input order. Records
    `masterdata.batch` (reason: the counts) with `actor_ref`, besides each service's own events.
    """
    companies = frozenset(companies)
    results: list[RecordResult | None] = [None] * len(records)
    valid: list[tuple[int, dict]] = []
    for index, data in enumerate(records):
        attrs, errors = parse_record(data)
        if errors:
            kind = data.get("type") if isinstance(data, dict) else ""
            ident = data.get("id") if isinstance(data, dict) else ""
            results[index] = RecordResult(index, kind if isinstance(kind, str) else "",
                                          ident if isinstance(ident, str) else "", "error", flatten_errors(errors))
        else:
            valid.append((index, attrs))
    by_type: dict[str, list[tuple[int, dict]]] = {}
    for index, attrs in valid:
        by_type.setdefault(attrs["type"], []).append((index, attrs))
    size = settings.MASTERDATA_CHUNK_SIZE
    with transaction.atomic():
        context = _Context(source=source, allowed_company_ids=set(), allowed_companies=companies, actor=actor)
        context.load_refs({(Entity.COMPANY, company) for company in companies})
        context.allowed_company_ids = {
            ref.object_id for (entity, _), ref in context.refs.items()
            if entity == Entity.COMPANY and not ref.deleted and ref.external_id in companies
        }
        with allowlist_batch() as batch:
            for entity in sorted(by_type, key=APPLY_ORDER.__getitem__):
                group = by_type[entity]
                for start in range(0, len(group), size):
                    chunk = group[start:start + size]
                    context.load_refs({(attrs["type"], attrs["id"]) for _, attrs in chunk}
                                      | {key for _, attrs in chunk for key in _references(attrs)})
                    if entity in BULK:
                        chunk = _create_together(context, entity, chunk, results)
                    for index, attrs in chunk:
                        results[index] = _apply_one(context, index, attrs)
        outcome = BatchOutcome(results=results)
        _audit_batch(outcome, source=source, actor_ref=actor_ref)
    outcome.allowlist_patches = batch.patches
    return outcome


def _references(attrs: dict) -> list[tuple[str, str]]:
    names = {"company": Entity.COMPANY, "building": Entity.BUILDING, "unit": Entity.UNIT,
             "resident": Entity.RESIDENT}
    return [(entity, attrs[name]) for name, entity in names.items() if attrs.get(name) and attrs["type"] != name]


def _audit_batch(outcome: BatchOutcome, *, source: str, actor_ref: str) -> None:
    counts = outcome.counts
    reason = ".".join(f"{name[0]}{counts[name]}" for name in RESULTS)  # c12.u3.u0.s1.d0.e2
    record(action=Action.MASTERDATA_BATCH, outcome=Outcome.SUCCESS if not counts["error"] else Outcome.FAILURE,
           object_type="masterdata_source", object_ref=f"source:{source}"[:64], actor_ref=actor_ref[:64],
           reason=reason)


def _apply_one(context: _Context, index: int, attrs: dict) -> RecordResult:
    entity, external, version = attrs["type"], attrs["id"], version_of(attrs)
    result = RecordResult(index, entity, external, "error")
    ref = context.refs.get((entity, external))
    if ref is not None and ref.company_id is not None and ref.company_id not in context.allowed_company_ids:
        # another company's record: said before anything about its versions is
        result.errors = [{"field": "id", "code": "company_not_allowed",
                          "detail": "This client may not write data of that management company."}]
        return result
    if ref is not None and version < ref.version:
        result.result = "stale"
        return result
    if ref is not None and version == ref.version:
        result.result = "unchanged"
        return result
    handler = HANDLERS[entity]
    try:
        with transaction.atomic():
            if attrs.get("deleted"):
                result.result, company_id, object_id = _delete(context, handler, ref, attrs)
            else:
                result.result, company_id, object_id = _upsert(context, handler, ref, attrs)
            context.refs[(entity, external)] = _store_ref(context, ref, attrs, version, company_id, object_id)
    except RecordRefused as refused:
        result.errors = refused.errors
    except ValidationError as invalid:
        result.errors = _validation_errors(invalid)
    except IntegrityError:
        result.errors = [{"field": "", "code": "conflict", "detail": "The record conflicts with another row."}]
    return result


def _validation_errors(invalid: ValidationError) -> list[dict]:
    if hasattr(invalid, "error_dict"):
        return [
            {"field": "" if name == "__all__" else name, "code": error.code or "invalid",
             "detail": " ".join(error.messages)}
            for name, errors in invalid.error_dict.items() for error in errors
        ]
    return [{"field": "", "code": error.code or "invalid", "detail": " ".join(error.messages)}
            for error in invalid.error_list]


def _store_ref(context, ref, attrs, version, company_id, object_id) -> ExternalRef:
    if ref is None:
        ref = ExternalRef(source=context.source, entity=attrs["type"], external_id=attrs["id"])
    ref.version, ref.company_id, ref.object_id = version, company_id, object_id
    ref.deleted = object_id is None
    ref.updated_at = timezone.now()
    ref.save()
    return ref


def _upsert(context, handler, ref, attrs) -> tuple[str, int, int]:
    current = None
    if ref is not None and not ref.deleted:
        current = handler.model.objects.filter(pk=ref.object_id).first()
    if current is None:  # never received, deleted at the source before, or deleted here since
        obj = handler.create(context, attrs)
        return "created", handler.company_of(obj), obj.pk
    context.check_company(handler.company_of(current), "id")
    changed = handler.update(context, current, attrs)
    return ("updated" if changed else "unchanged"), handler.company_of(current), current.pk


def _delete(context, handler, ref, attrs) -> tuple[str, int | None, None]:
    if handler.delete is None:
        raise RecordRefused("deleted", "delete_not_supported",
                            f"A {attrs['type']} is not deleted through the integration API.")
    current = None
    if ref is not None and not ref.deleted:
        current = handler.model.objects.filter(pk=ref.object_id).first()
    if current is None:
        return "unchanged", ref.company_id if ref is not None else None, None
    company_id = handler.company_of(current)
    context.check_company(company_id, "id")
    handler.delete(context, current)
    return "deleted", company_id, None


# --- one handler per type: create, update (returns whether anything changed), delete ------------


def _fixed(current_id: int, wanted_id: int, field_name: str) -> None:
    if current_id != wanted_id:
        raise RecordRefused(field_name, "fixed", "This reference cannot change; delete the record and send a new one.")


def _company_create(context, attrs) -> ManagementCompany:
    if attrs["id"] not in context.allowed_companies:
        raise RecordRefused("id", "company_not_allowed", "This client may not write that management company.")
    company = company_create(name=attrs["name"], actor=context.actor)
    context.allowed_company_ids.add(company.pk)
    return company


def _company_update(context, company, attrs) -> bool:
    if company.name == attrs["name"]:
        return False
    company_update(company=company, name=attrs["name"], actor=context.actor)
    return True


def _record_company(context, attrs) -> ManagementCompany:
    company_id = context.live(Entity.COMPANY, attrs["company"], "company")
    context.check_company(company_id, "company")
    return ManagementCompany.objects.get(pk=company_id)


def _building_create(context, attrs) -> Building:
    return building_create(company=_record_company(context, attrs), name=attrs["name"],
                           address=attrs["address"], timezone=attrs["timezone"], actor=context.actor)


def _building_update(context, building, attrs) -> bool:
    _fixed(building.company_id, _record_company(context, attrs).pk, "company")
    wanted = (attrs["name"], attrs["address"], attrs["timezone"])
    if (building.name, building.address, building.timezone) == wanted:
        return False
    building_update(building=building, name=wanted[0], address=wanted[1], timezone=wanted[2], actor=context.actor)
    return True


def _unit_building(context, attrs) -> Building:
    building = Building.objects.get(pk=context.live(Entity.BUILDING, attrs["building"], "building"))
    context.check_company(building.company_id, "building")
    return building


def _unit_create(context, attrs) -> Unit:
    return unit_create(building=_unit_building(context, attrs), number=attrs["number"], actor=context.actor)


def _unit_update(context, unit, attrs) -> bool:
    _fixed(unit.building_id, _unit_building(context, attrs).pk, "building")
    if unit.number == attrs["number"]:
        return False
    unit_update(unit=unit, number=attrs["number"], actor=context.actor)
    return True


def _check_phone(context, attrs, resident_id: int | None, taken: bool | None = None) -> None:
    """A phone another resident already has (or an earlier record of this batch) is refused:
    residents sign in with it (identity). `taken`: whether it is stored already, if known."""
    digest = contact_digest(PHONE, attrs["phone"])
    if digest is None:
        return
    if taken is None:
        taken = any(pk != resident_id for pk in resident_ids_with(PHONE, attrs["phone"]))
    claimed = context.phones_claimed.get(digest)
    if taken or (claimed is not None and claimed != attrs["id"]):
        raise RecordRefused("phone", "duplicate_phone", "Another resident already has this phone number.")
    context.phones_claimed[digest] = attrs["id"]


def _resident_create(context, attrs) -> Resident:
    company = _record_company(context, attrs)
    _check_phone(context, attrs, None)
    return resident_create(company=company, full_name=attrs["full_name"], phone=attrs["phone"],
                           email=attrs["email"], actor=context.actor)


def _resident_update(context, resident, attrs) -> bool:
    _fixed(resident.company_id, _record_company(context, attrs).pk, "company")
    changes = {name: attrs[name] for name in ("full_name", "phone", "email") if getattr(resident, name) != attrs[name]}
    if not changes:
        return False
    if "phone" in changes:
        _check_phone(context, attrs, resident.pk)
    resident_update(resident=resident, actor=context.actor, **changes)
    return True


def _resident_delete(context, resident) -> None:
    resident_delete(resident=resident, actor=context.actor)


def _residency_parts(context, attrs) -> tuple[Resident, Unit]:
    resident = Resident.objects.get(pk=context.live(Entity.RESIDENT, attrs["resident"], "resident"))
    context.check_company(resident.company_id, "resident")
    unit = Unit.objects.select_related("building").get(pk=context.live(Entity.UNIT, attrs["unit"], "unit"))
    context.check_company(unit.building.company_id, "unit")
    return resident, unit


def _residency_create(context, attrs) -> Residency:
    resident, unit = _residency_parts(context, attrs)
    residency = residency_create(resident=resident, unit=unit, kind=attrs["kind"], valid_from=attrs["valid_from"],
                                 valid_until=attrs["valid_until"], actor=context.actor)
    if settings.MASTERDATA_MOVE_IN_GRANT:
        grant_create(residency=residency, building=unit.building, actor=context.actor,
                     valid_from=move_in_grant_start(residency.valid_from, unit.building))
    return residency


def _residency_update(context, residency, attrs) -> bool:
    resident, unit = _residency_parts(context, attrs)
    _fixed(residency.resident_id, resident.pk, "resident")
    _fixed(residency.unit_id, unit.pk, "unit")
    wanted = (attrs["kind"], attrs["valid_from"], attrs["valid_until"])
    if (residency.kind, residency.valid_from, residency.valid_until) == wanted:
        return False
    residency_update(residency=residency, kind=wanted[0], valid_from=wanted[1], valid_until=wanted[2],
                     actor=context.actor)  # an earlier move-out date is a move-out
    return True


def _residency_delete(context, residency) -> None:
    residency_delete(residency=residency, actor=context.actor)


def _vehicle_owner(context, attrs) -> Resident:
    resident = Resident.objects.get(pk=context.live(Entity.RESIDENT, attrs["resident"], "resident"))
    context.check_company(resident.company_id, "resident")
    return resident


def _vehicle_create(context, attrs) -> Vehicle:
    return vehicle_create(resident=_vehicle_owner(context, attrs), plate=attrs["plate"], label=attrs["label"],
                          actor=context.actor)


def _vehicle_update(context, vehicle, attrs) -> bool:
    _fixed(vehicle.resident_id, _vehicle_owner(context, attrs).pk, "resident")
    try:
        same_plate = normalise_plate(attrs["plate"]) == vehicle.plate
    except InvalidPlate as exc:
        raise ValidationError({"plate": ValidationError(exc.message, code=exc.code)}) from None
    if same_plate and vehicle.label == attrs["label"]:
        return False
    vehicle_update(vehicle=vehicle, plate=None if same_plate else attrs["plate"], label=attrs["label"],
                   actor=context.actor)
    return True


def _vehicle_delete(context, vehicle) -> None:
    vehicle_delete(vehicle=vehicle, actor=context.actor)


@dataclass(frozen=True)
class _Handler:
    model: type
    company_of: object
    create: object
    update: object
    delete: object = None


HANDLERS = {
    Entity.COMPANY: _Handler(ManagementCompany, lambda company: company.pk, _company_create, _company_update),
    Entity.BUILDING: _Handler(Building, lambda building: building.company_id, _building_create, _building_update),
    Entity.UNIT: _Handler(Unit, lambda unit: Building.objects.values_list("company_id", flat=True)
                          .get(pk=unit.building_id), _unit_create, _unit_update),
    Entity.RESIDENT: _Handler(Resident, lambda resident: resident.company_id, _resident_create, _resident_update,
                              _resident_delete),
    Entity.RESIDENCY: _Handler(Residency, lambda residency: Resident.objects.values_list("company_id", flat=True)
                               .get(pk=residency.resident_id), _residency_create, _residency_update,
                               _residency_delete),
    Entity.VEHICLE: _Handler(Vehicle, lambda vehicle: Resident.objects.values_list("company_id", flat=True)
                             .get(pk=vehicle.resident_id), _vehicle_create, _vehicle_update, _vehicle_delete),
}


# --- new flats, residents, residencies and cars of a chunk: written together ------------------------


def _create_together(context, entity: str, chunk: list, results: list) -> list:
    """Write the chunk's records that create a row (never received before) with one bulk service
    call; return the others (changes, deletions, repeats of an id) for the one-row path. Should
    the database refuse the bulk write, nothing of it stays and every record goes one by one."""
    fresh, rest, seen = [], [], set()
    for index, attrs in chunk:
        key = (entity, attrs["id"])
        if attrs.get("deleted") or key in seen or key in context.refs:
            rest.append((index, attrs))
        else:
            seen.add(key)
            fresh.append((index, attrs))
    if not fresh:
        return rest
    specs, placed = BULK[entity].specs(context, fresh, results)
    try:
        with transaction.atomic():
            outcomes = BULK[entity].create(specs, context.actor)
            refs = []
            for (index, attrs), outcome in zip(placed, outcomes, strict=True):
                if isinstance(outcome, ValidationError):
                    results[index] = RecordResult(index, entity, attrs["id"], "error", _validation_errors(outcome))
                    continue
                results[index] = RecordResult(index, entity, attrs["id"], "created")
                refs.append(ExternalRef(source=context.source, entity=entity, external_id=attrs["id"],
                                        object_id=outcome.pk, company_id=BULK[entity].company_of(outcome),
                                        version=version_of(attrs)))
            copy_create(refs)
    except IntegrityError:
        for phone_digest in [d for d, owner in context.phones_claimed.items() if (entity, owner) in seen]:
            del context.phones_claimed[phone_digest]
        return sorted(fresh + rest)
    for ref in refs:
        context.refs[(entity, ref.external_id)] = ref
    return rest


def _gather(entity: str, fresh: list, results: list, build) -> tuple[list, list]:
    """(specs, their (index, attrs)): `build(attrs)` for each record, or its RecordRefused as the
    record's error result."""
    specs, placed = [], []
    for index, attrs in fresh:
        try:
            specs.append(build(attrs))
        except RecordRefused as refused:
            results[index] = RecordResult(index, entity, attrs["id"], "error", refused.errors)
            continue
        placed.append((index, attrs))
    return specs, placed


def _unit_specs(context, fresh, results):
    buildings = _named(context, Building.objects, Entity.BUILDING, [attrs["building"] for _, attrs in fresh])

    def build(attrs):
        building = _present(context, buildings, Entity.BUILDING, attrs["building"], "building")
        context.check_company(building.company_id, "building")
        return NewUnit(building=building, number=attrs["number"])

    return _gather(Entity.UNIT, fresh, results, build)


def _resident_specs(context, fresh, results):
    taken = contacts_taken(PHONE, [attrs["phone"] for _, attrs in fresh if attrs["phone"]])
    companies = {}

    def build(attrs):
        company_id = context.live(Entity.COMPANY, attrs["company"], "company")
        context.check_company(company_id, "company")
        _check_phone(context, attrs, None, taken=attrs["phone"] in taken)
        if company_id not in companies:
            companies[company_id] = ManagementCompany.objects.get(pk=company_id)
        return NewResident(company=companies[company_id], full_name=attrs["full_name"], phone=attrs["phone"],
                           email=attrs["email"])

    return _gather(Entity.RESIDENT, fresh, results, build)


def _residency_specs(context, fresh, results):
    residents = _named(context, _RESIDENTS_BARE, Entity.RESIDENT, [attrs["resident"] for _, attrs in fresh])
    units = _named(context, Unit.objects, Entity.UNIT, [attrs["unit"] for _, attrs in fresh])
    buildings = Building.objects.in_bulk({unit.building_id for unit in units.values()})
    for unit in units.values():  # the flats of one building share its row (a chunk is hundreds of flats)
        unit.building = buildings[unit.building_id]

    def build(attrs):
        resident = _present(context, residents, Entity.RESIDENT, attrs["resident"], "resident")
        unit = _present(context, units, Entity.UNIT, attrs["unit"], "unit")
        context.check_company(resident.company_id, "resident")
        context.check_company(unit.building.company_id, "unit")
        return NewResidency(resident=resident, unit=unit, kind=attrs["kind"], valid_from=attrs["valid_from"],
                            valid_until=attrs["valid_until"], grant=settings.MASTERDATA_MOVE_IN_GRANT)

    return _gather(Entity.RESIDENCY, fresh, results, build)


def _vehicle_specs(context, fresh, results):
    residents = _named(context, _RESIDENTS_BARE, Entity.RESIDENT, [attrs["resident"] for _, attrs in fresh])

    def build(attrs):
        resident = _present(context, residents, Entity.RESIDENT, attrs["resident"], "resident")
        context.check_company(resident.company_id, "resident")
        return NewVehicle(resident=resident, plate=attrs["plate"], label=attrs["label"])

    return _gather(Entity.VEHICLE, fresh, results, build)


# the residents a flat or a car is attached to: their personal data (encrypted) is not needed
_RESIDENTS_BARE = Resident.objects.defer("full_name", "phone", "email")


def _present(context, rows: dict, entity: str, external: str, field_name: str):
    """The row a reference names, from `rows` (`_named`), or RecordRefused."""
    row = rows.get(context.live(entity, external, field_name))
    if row is None:
        raise RecordRefused(field_name, "unknown_reference", "The record it names no longer exists here.")
    return row


def _named(context, queryset, entity: str, externals: list[str]) -> dict:
    """{our id: row} of the live records of `entity` among `externals` (in one query)."""
    refs = [context.refs.get((entity, external)) for external in externals]
    return queryset.in_bulk([ref.object_id for ref in refs if ref is not None and not ref.deleted])


@dataclass(frozen=True)
class _Together:
    specs: object
    create: object
    company_of: object


BULK = {
    Entity.UNIT: _Together(_unit_specs, lambda specs, actor: units_create_many(units=specs, actor=actor),
                           lambda unit: unit.building.company_id),
    Entity.RESIDENT: _Together(_resident_specs, lambda specs, actor: residents_create_many(people=specs, actor=actor),
                               lambda resident: resident.company_id),
    Entity.RESIDENCY: _Together(_residency_specs,
                                lambda specs, actor: residencies_create_many(residencies=specs, actor=actor),
                                lambda residency: residency.resident.company_id),
    Entity.VEHICLE: _Together(_vehicle_specs, lambda specs, actor: vehicles_create_many(vehicles=specs, actor=actor),
                              lambda vehicle: vehicle.resident.company_id),
}
