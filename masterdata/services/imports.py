"""The admin's spreadsheet import: a manager onboards a complex from a CSV or XLSX file.

Three shapes (masterdata.resources): residents with flats and cars, buildings with flats, devices
with partner refs. `import_preview` checks every row (plate format, unknown flat or building,
duplicate phone, a row of another company, ...) and then applies the whole file and rolls it back
- a dry run, so what only the services find (a plate already taken) shows too - and keeps the file,
encrypted, for `import_confirm`, which applies it for real. A manager imports only into a company
they work for, with the admin's add and change permissions of the shape's rows.

Every row goes through the access services: new residents, residencies (with the move-in grant,
MASTERDATA_MOVE_IN_GRANT) and cars together through access.services.onboarding, everything else
row by row (`resident_update`, `vehicle_delete`, `building_create`, `device_update`, ...), each
with its own audit event and admin history entry. The import is one transaction and one
`allowlist_batch` (one allowlist patch per partner and site), recorded as one `masterdata.import`
event with its counts. A row with an error is left out; the others are applied. New residents
can be invited in the same step (identity's invitations, by SMS or e-mail).
"""

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from access.models import Building, Device, ManagementCompany, Residency, Resident, Unit
from access.plates import InvalidPlate, normalise_plate
from access.services.allowlist import allowlist_batch
from access.services.companies import building_create, building_update, unit_create
from access.services.devices import device_create, device_update
from access.services.onboarding import (
    NewResidency,
    NewResident,
    NewVehicle,
    residencies_create_many,
    residents_create_many,
    vehicles_create_many,
)
from access.services.residencies import residency_create
from access.services.residents import resident_update
from access.services.vehicles import vehicle_create, vehicle_delete
from audit.actions import Action, Outcome
from audit.actors import actor_fields
from audit.services import record
from core.security.tenancy import company_ids_for_user
from identity.contacts import PHONE, contact_digest, contacts_taken, resident_ids_with
from identity.services.invitations import invitation_create_bulk
from masterdata.models import SpreadsheetImport
from masterdata.resources import PLATE_SEPARATOR, RESOURCES, read_dataset
from partners.models import Partner

STATUSES = ("new", "update", "unchanged", "error")
SHAPE_MODELS = {"residents": Resident, "buildings": Building, "devices": Device}


@dataclass
class RowResult:
    """One data row: `row` is its number in the spreadsheet (the header is row 1)."""

    row: int
    status: str = "unchanged"
    errors: list[str] = field(default_factory=list)

    def refuse(self, message: str) -> None:
        self.status = "error"
        self.errors.append(message)


@dataclass
class ImportOutcome:
    rows: list[RowResult]
    allowlist_patches: int = 0
    invited: int = 0
    invitations_refused: int = 0

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for row in self.rows:
            counts[row.status] += 1
        return counts

    @property
    def errors_count(self) -> int:
        return self.counts["error"]


class _DryRunDone(Exception):
    """Raised to roll a dry run back."""


def check_may_import(*, user, company: ManagementCompany, shape: str) -> None:
    """PermissionDenied unless `user` works for `company` (or sees every company) and holds the
    admin's add and change permissions of the shape's rows."""
    allowed = company_ids_for_user(user)
    model = SHAPE_MODELS[shape]._meta
    perms = [f"{model.app_label}.add_{model.model_name}", f"{model.app_label}.change_{model.model_name}"]
    if (allowed is not None and company.pk not in allowed) or not user.has_perms(perms):
        raise PermissionDenied(_("You may not import into this management company."))


def import_preview(*, user, company: ManagementCompany, shape: str, data: bytes, file_format: str,
                   file_name: str = "", invite_channel: str = "") -> tuple[SpreadsheetImport, ImportOutcome]:
    """Check and dry-run a file (see the module docstring); keep it for `import_confirm`.
    Raises PermissionDenied (see `check_may_import`) or ValidationError (a file that cannot be
    read, a missing or unknown column, too many rows)."""
    outcome = spreadsheet_apply(user=user, company=company, shape=shape, data=data, file_format=file_format,
                                dry_run=True)
    pending = SpreadsheetImport.objects.create(
        company=company, created_by=user, shape=shape, file_format=file_format, file_name=file_name[:200],
        payload=base64.b64encode(data).decode(), invite_channel=invite_channel, rows=len(outcome.rows),
        counts=outcome.counts,
    )
    return pending, outcome


@transaction.atomic
def import_confirm(*, user, pending: SpreadsheetImport) -> ImportOutcome:
    """Apply a previewed file for real, by the user who previewed it (and may still import into
    its company). Records `masterdata.import` (reason: the counts); erases the kept file."""
    pending = SpreadsheetImport.objects.select_for_update(of=("self",)).select_related("company").get(pk=pending.pk)
    if pending.created_by_id != user.pk or pending.status != SpreadsheetImport.Status.PREVIEWED:
        raise PermissionDenied(_("This import is not waiting for your confirmation."))
    try:
        data = base64.b64decode(pending.payload)
    except binascii.Error:
        raise ValidationError(_("The kept file cannot be read; upload it again.")) from None
    outcome = spreadsheet_apply(user=user, company=pending.company, shape=pending.shape, data=data,
                                file_format=pending.file_format, invite_channel=pending.invite_channel,
                                import_id=pending.pk)
    pending.status, pending.payload, pending.applied_at = SpreadsheetImport.Status.APPLIED, "", timezone.now()
    pending.counts = {**outcome.counts, "invited": outcome.invited, "allowlist_patches": outcome.allowlist_patches}
    pending.save(update_fields=["status", "payload", "applied_at", "counts"])
    return outcome


def import_abandon(*, user, pending: SpreadsheetImport) -> None:
    """Forget a previewed file without applying it."""
    SpreadsheetImport.objects.filter(pk=pending.pk, created_by=user, status=SpreadsheetImport.Status.PREVIEWED).update(
        status=SpreadsheetImport.Status.ABANDONED, payload="")


def spreadsheet_apply(*, user, company: ManagementCompany, shape: str, data: bytes, file_format: str,
                      dry_run: bool = False, invite_channel: str = "", import_id: int | None = None) -> ImportOutcome:
    """Check every row of the file and apply the good ones in one transaction (rolled back when
    `dry_run`). Records `masterdata.import` unless dry. Raises as `import_preview`."""
    check_may_import(user=user, company=company, shape=shape)
    rows = _rows(shape, data, file_format)
    try:
        with transaction.atomic():
            with allowlist_batch() as batch:
                outcome = ImportOutcome(rows=[RowResult(row=number) for number in range(2, len(rows) + 2)])
                created = SHAPES[shape](user, company, rows, outcome.rows)
            outcome.allowlist_patches = batch.patches
            if dry_run:
                raise _DryRunDone
            if invite_channel and created:
                outcome.invited, outcome.invitations_refused = _invite(created, invite_channel, user)
            counts = outcome.counts
            record(action=Action.MASTERDATA_IMPORT, outcome=Outcome.SUCCESS if not counts["error"] else Outcome.FAILURE,
                   object_type="spreadsheet_import", object_ref=f"spreadsheet_import:{import_id or 0}",
                   company_id=company.pk, reason=f"{shape}.n{counts['new']}.u{counts['update']}."
                                                  f"s{counts['unchanged']}.e{counts['error']}.i{outcome.invited}",
                   **actor_fields(user))
    except _DryRunDone:
        pass
    return outcome


def _invite(resident_ids: list[int], channel: str, user) -> tuple[int, int]:
    """Invite the new residents, a chunk at a time (a large import keeps their ids, not the rows);
    returns (invited, refused)."""
    invited = refused = 0
    size = settings.MASTERDATA_CHUNK_SIZE
    for start in range(0, len(resident_ids), size):
        residents = Resident.objects.filter(pk__in=resident_ids[start:start + size]).order_by("pk")
        done, failed = invitation_create_bulk(residents=list(residents), channel=channel, actor=user)
        invited, refused = invited + len(done), refused + len(failed)
    return invited, refused


def _rows(shape: str, data: bytes, file_format: str) -> list["_Row"]:
    """The file's data rows ({column: cell} mappings), the header checked."""
    try:
        dataset = read_dataset(data, file_format)
    except Exception as exc:  # tablib and openpyxl raise many kinds on a broken file
        raise ValidationError(_("The file cannot be read as %(format)s.") % {"format": file_format.upper()}) from exc
    columns = list(RESOURCES[shape]._meta.fields)
    headers = [str(header or "").strip() for header in (dataset.headers or [])]
    unknown = sorted(set(headers) - set(columns) - {""})
    missing = [column for column in columns if column != "id" and column not in headers]
    if unknown or missing:
        raise ValidationError(_("The header row must name the columns %(columns)s (unknown: %(unknown)s; "
                                "missing: %(missing)s).") % {"columns": ", ".join(columns),
                                                             "unknown": ", ".join(unknown) or "-",
                                                             "missing": ", ".join(missing) or "-"})
    if len(dataset) > settings.MASTERDATA_IMPORT_MAX_ROWS:
        raise ValidationError(_("At most %(count)d rows per file.") % {"count": settings.MASTERDATA_IMPORT_MAX_ROWS})
    index = {header: position for position, header in enumerate(headers) if header}
    return [_Row(index, tuple(_cell(value) for value in values)) for values in dataset]


class _Row(Mapping):
    """One data row's cells by column: a tuple and the file's shared column index (a file of
    50,000 rows kept as dicts would cost the import tens of megabytes)."""

    __slots__ = ("_cells", "_index")

    def __init__(self, index: dict[str, int], cells: tuple[str, ...]):
        self._index, self._cells = index, cells

    def __getitem__(self, column: str) -> str:
        position = self._index[column]
        return self._cells[position] if position < len(self._cells) else ""

    def __iter__(self):
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a flat number a spreadsheet turned into 101.0
    return str(value).strip()


def _clean(resource, name: str, row: dict, result: RowResult):
    """The cell through the column's widget (None when empty); an unreadable cell is the row's error."""
    if not row.get(name):
        return None
    try:
        return resource.fields[name].clean(row)
    except ValueError:
        result.refuse(_("%(column)s: %(value)r cannot be read") % {"column": name, "value": row[name][:40]})
        return None


def _id(resource, row, result) -> int | None:
    pk = _clean(resource, "id", row, result)
    return int(pk) if pk is not None else None


def _messages(invalid: ValidationError) -> list[str]:
    if hasattr(invalid, "error_dict"):
        return [f"{name}: {message}" if name != "__all__" else message
                for name, errors in invalid.message_dict.items() for message in errors]
    return list(invalid.messages)


def _apply_one(result: RowResult, status: str, apply) -> bool:
    """Apply one row's changes in a savepoint: its status, or its error."""
    try:
        with transaction.atomic():
            changed = apply()
    except ValidationError as invalid:
        for message in _messages(invalid):
            result.refuse(message)
        return False
    if changed:
        result.status = status
    return True


# --- residents with flats and cars ------------------------------------------------------------------


@dataclass
class _ResidentRow:
    result: RowResult
    pk: int | None
    full_name: str
    phone: str
    email: str
    unit: "_Flat | None"
    kind: str
    valid_from: object
    plates: list[str]


def _apply_residents(user, company, rows: list[Mapping], results: list[RowResult]) -> list[int]:
    """Apply the rows; returns the ids of the new residents."""
    resource = RESOURCES["residents"]()
    units = _flats(company)
    wanted_ids = {int(row["id"]) for row in rows if row.get("id", "").isdigit()}
    ours = Resident.objects.filter(company=company).in_bulk(wanted_ids)
    theirs = set(Resident.objects.filter(pk__in=wanted_ids - set(ours)).values_list("pk", flat=True))
    taken = contacts_taken(PHONE, [row["phone"] for row in rows if row.get("phone") and not row.get("id")])
    claimed: dict[str, int] = {}
    parsed = []
    for row, result in zip(rows, results, strict=True):
        parsed_row = _resident_row(resource, row, result, units, ours, theirs, taken, claimed)
        if parsed_row is not None:
            parsed.append(parsed_row)
    fresh = [p for p in parsed if p.pk is None]
    created: list[int] = []
    for start in range(0, len(fresh), settings.MASTERDATA_CHUNK_SIZE):
        created += _create_residents(user, company, fresh[start:start + settings.MASTERDATA_CHUNK_SIZE])
    for known in (p for p in parsed if p.pk is not None):
        _update_resident(user, ours[known.pk], known)
    return created


class _Flat(NamedTuple):
    """A flat of the company as the import holds it: a complex's tens of thousands of flats stay in
    memory for the whole import, so not as model instances (each several times larger)."""

    pk: int
    number: str
    building: Building  # the flats of one building share it

    def unit(self) -> Unit:
        """The flat as a saved Unit, for the services (made for the rows being applied only)."""
        unit = Unit(pk=self.pk, building=self.building, number=self.number)
        unit._state.adding, unit._state.db = False, DEFAULT_DB_ALIAS
        return unit


def _flats(company) -> dict[tuple[str, str], _Flat]:
    """The company's flats by (building name, number), casefolded."""
    buildings = Building.objects.filter(company=company).in_bulk()
    flats = {}
    for pk, building_id, number in Unit.objects.filter(building__company=company).values_list(
            "pk", "building_id", "number").iterator(chunk_size=5000):
        building = buildings[building_id]
        flats[(building.name.casefold(), number.casefold())] = _Flat(pk, number, building)
    return flats


def _resident_row(resource, row, result, units, ours, theirs, taken, claimed) -> _ResidentRow | None:
    pk = _id(resource, row, result)
    if pk is not None and pk not in ours:
        result.refuse(_("id: resident %(id)s belongs to another management company") % {"id": pk} if pk in theirs
                      else _("id: no resident %(id)s") % {"id": pk})
    full_name = row.get("full_name", "")
    if not full_name:
        result.refuse(_("full_name: required"))
    phone = row.get("phone", "")
    digest = contact_digest(PHONE, phone) if phone else None
    if digest is not None:
        if (pk is None and phone in taken) or (pk is not None and pk in ours and phone != ours[pk].phone
                                                and any(other != pk for other in resident_ids_with(PHONE, phone))):
            result.refuse(_("phone: another resident already has this phone number"))
        elif digest in claimed:
            result.refuse(_("phone: the same as row %(row)d") % {"row": claimed[digest]})
        else:
            claimed[digest] = result.row
    unit = None
    building_name, flat = row.get("building", ""), row.get("flat", "")
    if building_name or flat:
        unit = units.get((building_name.casefold(), flat.casefold()))
        if unit is None:
            result.refuse(_("flat: no flat %(flat)r in building %(building)r of this company")
                          % {"flat": flat, "building": building_name})
    kind = row.get("kind") or Residency.Kind.OWNER
    if kind not in Residency.Kind.values:
        result.refuse(_("kind: one of %(kinds)s") % {"kinds": ", ".join(Residency.Kind.values)})
    valid_from = _clean(resource, "valid_from", row, result) or timezone.localdate()
    plates = []
    for plate in filter(None, (part.strip() for part in row.get("plates", "").split(PLATE_SEPARATOR))):
        try:
            plates.append(normalise_plate(plate))
        except InvalidPlate as exc:
            result.refuse(_("plates: %(plate)r - %(reason)s") % {"plate": plate, "reason": exc.message})
    if result.status == "error":
        return None
    return _ResidentRow(result, pk, full_name, phone, row.get("email", ""), unit, kind, valid_from, plates)


def _create_residents(user, company, rows: list[_ResidentRow]) -> list[int]:
    made = residents_create_many(people=[NewResident(company=company, full_name=r.full_name, phone=r.phone,
                                                     email=r.email) for r in rows], actor=user)
    residents = []
    for row, outcome in zip(rows, made, strict=True):
        if isinstance(outcome, ValidationError):
            for message in _messages(outcome):
                row.result.refuse(message)
        else:
            row.result.status = "new"
            residents.append((row, outcome))
    homes = [(row, resident) for row, resident in residents if row.unit is not None]
    moved_in = residencies_create_many(residencies=[
        NewResidency(resident=resident, unit=row.unit.unit(), kind=row.kind, valid_from=row.valid_from,
                     grant=settings.MASTERDATA_MOVE_IN_GRANT) for row, resident in homes], actor=user)
    for (row, _resident), outcome in zip(homes, moved_in, strict=True):
        if isinstance(outcome, ValidationError):
            row.result.refuse(_("flat: %(reason)s") % {"reason": "; ".join(_messages(outcome))})
    cars = [(row, resident, plate) for row, resident in residents for plate in row.plates]
    added = vehicles_create_many(vehicles=[NewVehicle(resident=resident, plate=plate) for _, resident, plate in cars],
                                 actor=user)
    for (row, _resident, plate), outcome in zip(cars, added, strict=True):
        if isinstance(outcome, ValidationError):
            row.result.refuse(_("plates: %(plate)s not added - %(reason)s")
                              % {"plate": plate, "reason": "; ".join(_messages(outcome))})
    return [resident.pk for _, resident in residents]


def _update_resident(user, resident: Resident, row: _ResidentRow) -> None:
    def apply() -> bool:
        changed = False
        changes = {name: getattr(row, name) for name in ("full_name", "phone", "email")
                   if getattr(resident, name) != getattr(row, name)}
        if changes:
            resident_update(resident=resident, actor=user, **changes)
            changed = True
        today = timezone.localdate()
        if row.unit is not None and not any(r.unit_id == row.unit.pk and r.is_current(today)
                                            for r in resident.residencies.all()):
            residency_create(resident=resident, unit=row.unit.unit(), kind=row.kind, valid_from=row.valid_from,
                             actor=user)
            changed = True
        held = {vehicle.plate: vehicle for vehicle in resident.vehicles.all()}
        for plate in row.plates:
            if plate not in held:
                vehicle_create(resident=resident, plate=plate, actor=user)
                changed = True
        for plate, vehicle in held.items():
            if plate not in row.plates:
                vehicle_delete(vehicle=vehicle, actor=user)  # the cell lists every car
                changed = True
        return changed

    _apply_one(row.result, "update", apply)


# --- buildings with flats ---------------------------------------------------------------------------


def _apply_buildings(user, company, rows: list[Mapping], results: list[RowResult]) -> list:
    resource = RESOURCES["buildings"]()
    buildings = {building.name.casefold(): building for building in Building.objects.filter(company=company)}
    by_id = {building.pk: building for building in buildings.values()}
    foreign = set(Building.objects.exclude(company=company).values_list("pk", flat=True))
    flats = {(unit.building_id, unit.number.casefold()) for unit in Unit.objects.filter(building__company=company)}
    for row, result in zip(rows, results, strict=True):
        pk = _id(resource, row, result)
        name = row.get("building", "")
        if not name:
            result.refuse(_("building: required"))
        if pk is not None and pk not in by_id:
            result.refuse(_("id: building %(id)s belongs to another management company") % {"id": pk}
                          if pk in foreign else _("id: no building %(id)s") % {"id": pk})
        if result.status == "error":
            continue
        building = by_id.get(pk) if pk is not None else buildings.get(name.casefold())
        _apply_one(result, "update", lambda b=building, r=row, res=result: _building_row(
            user, company, b, r, buildings, flats, res))
    return []


def _building_row(user, company, building, row, buildings, flats, result) -> bool:
    address, zone = row.get("address", ""), row.get("timezone", "")
    changed = False
    if building is None:
        building = building_create(company=company, name=row["building"], address=address,
                                   timezone=zone or "Europe/Moscow", actor=user)
        buildings[building.name.casefold()] = building
        result.status = "new"
    else:
        wanted = (row["building"], address or building.address, zone or building.timezone)
        if (building.name, building.address, building.timezone) != wanted:
            building_update(building=building, name=wanted[0], address=wanted[1], timezone=wanted[2], actor=user)
            changed = True
    number = row.get("flat", "")
    if number and (building.pk, number.casefold()) not in flats:
        unit_create(building=building, number=number, actor=user)
        flats.add((building.pk, number.casefold()))
        result.status = "new"
    return changed


# --- devices with partner refs ----------------------------------------------------------------------


def _apply_devices(user, company, rows: list[Mapping], results: list[RowResult]) -> list:
    resource = RESOURCES["devices"]()
    buildings = {building.name.casefold(): building for building in Building.objects.filter(company=company)}
    devices = Device.objects.filter(building__company=company).in_bulk()
    foreign = set(Device.objects.exclude(building__company=company).values_list("pk", flat=True))
    partners = {partner.slug: partner for partner in Partner.objects.all()}
    for row, result in zip(rows, results, strict=True):
        pk = _id(resource, row, result)
        if pk is not None and pk not in devices:
            result.refuse(_("id: device %(id)s belongs to another management company") % {"id": pk}
                          if pk in foreign else _("id: no device %(id)s") % {"id": pk})
        building = buildings.get(row.get("building", "").casefold())
        if building is None:
            result.refuse(_("building: no building %(name)r in this company") % {"name": row.get("building", "")})
        partner = partners.get(row.get("partner", ""))
        if partner is None:
            result.refuse(_("partner: no partner %(slug)r") % {"slug": row.get("partner", "")})
        if result.status == "error":
            continue
        if pk is None:
            _apply_one(result, "new", lambda b=building, p=partner, r=row: bool(device_create(
                building=b, kind=r.get("kind", ""), name=r.get("name", ""), partner=p,
                partner_device_ref=r.get("partner_device_ref", ""), actor=user)))
            continue
        device = devices[pk]
        if (device.building_id, device.partner_id, device.kind) != (building.pk, partner.pk, row.get("kind")):
            result.refuse(_("building, partner and kind of a device never change: remove it and add another"))
            continue
        wanted = (row.get("name", ""), row.get("partner_device_ref", ""))
        if (device.name, device.partner_device_ref) != wanted:
            _apply_one(result, "update", lambda d=device, w=wanted: bool(device_update(
                device=d, name=w[0], partner_device_ref=w[1], actor=user)))
    return []


SHAPES = {"residents": _apply_residents, "buildings": _apply_buildings, "devices": _apply_devices}
