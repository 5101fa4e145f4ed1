"""The spreadsheet shapes of the admin's import and export (django-import-export resources).

Each resource names its columns and how a cell becomes a value (widgets) and back (export);
the rows themselves are applied by masterdata.services.imports through the access services,
not by django-import-export's own row saving (which writes models directly).

- residents: id, full_name, phone, email, building, flat, kind, valid_from, plates - one row per
  resident; `building` + `flat` is where they live (a new residency if they do not live there
  yet), `plates` their cars separated by ";" (the full list: a car left out is removed);
- buildings: id, building, address, timezone, flat - one row per flat (a building without flats:
  one row with an empty flat);
- devices: id, building, kind, name, partner, partner_device_ref - `partner` is the partner's slug.

`id` is ours (empty for a new row): an exported file, edited and imported again, changes the
rows it names. Nothing secret is exported: no credentials, tokens, keys or plate tokens.
"""

import datetime

import tablib
from import_export import fields, resources, widgets
from import_export.formats.base_formats import CSV, XLSX

from access.models import Device, Residency, Resident, Unit

FORMATS = {"csv": CSV, "xlsx": XLSX}
PLATE_SEPARATOR = ";"


class ResidentResource(resources.ModelResource):
    id = fields.Field(attribute="pk", column_name="id", widget=widgets.IntegerWidget())
    full_name = fields.Field(attribute="full_name", column_name="full_name")
    phone = fields.Field(attribute="phone", column_name="phone")
    email = fields.Field(attribute="email", column_name="email")
    building = fields.Field(column_name="building")
    flat = fields.Field(column_name="flat")
    kind = fields.Field(column_name="kind")
    valid_from = fields.Field(column_name="valid_from", widget=widgets.DateWidget("%Y-%m-%d"))
    plates = fields.Field(column_name="plates")

    class Meta:
        model = Resident
        fields = ("id", "full_name", "phone", "email", "building", "flat", "kind", "valid_from", "plates")
        export_order = fields

    def _home(self, resident: Resident) -> Residency | None:
        today = datetime.date.today()
        current = [r for r in resident.residencies.all() if r.is_current(today)]
        return min(current, key=lambda r: (r.valid_from, r.pk)) if current else None

    def dehydrate_building(self, resident):
        home = self._home(resident)
        return home.unit.building.name if home else ""

    def dehydrate_flat(self, resident):
        home = self._home(resident)
        return home.unit.number if home else ""

    def dehydrate_kind(self, resident):
        home = self._home(resident)
        return home.kind if home else ""

    def dehydrate_valid_from(self, resident):
        home = self._home(resident)
        return home.valid_from if home else None

    def dehydrate_plates(self, resident):
        return f"{PLATE_SEPARATOR} ".join(vehicle.plate for vehicle in resident.vehicles.all())


class BuildingResource(resources.ModelResource):
    id = fields.Field(attribute="building_id", column_name="id", widget=widgets.IntegerWidget())
    building = fields.Field(attribute="building__name", column_name="building")
    address = fields.Field(attribute="building__address", column_name="address")
    timezone = fields.Field(attribute="building__timezone", column_name="timezone")
    flat = fields.Field(attribute="number", column_name="flat")

    class Meta:
        model = Unit
        fields = ("id", "building", "address", "timezone", "flat")
        export_order = fields


class DeviceResource(resources.ModelResource):
    id = fields.Field(attribute="pk", column_name="id", widget=widgets.IntegerWidget())
    building = fields.Field(attribute="building__name", column_name="building")
    kind = fields.Field(attribute="kind", column_name="kind")
    name = fields.Field(attribute="name", column_name="name")
    partner = fields.Field(attribute="partner__slug", column_name="partner")
    partner_device_ref = fields.Field(attribute="partner_device_ref", column_name="partner_device_ref")

    class Meta:
        model = Device
        fields = ("id", "building", "kind", "name", "partner", "partner_device_ref")
        export_order = fields


RESOURCES = {"residents": ResidentResource, "buildings": BuildingResource, "devices": DeviceResource}


def read_dataset(data: bytes, file_format: str) -> tablib.Dataset:
    """The rows of an uploaded CSV (UTF-8, with or without BOM) or XLSX file (its first sheet)."""
    if file_format == "csv":
        return CSV(encoding="utf-8-sig").create_dataset(data)
    return XLSX().create_dataset(data)


def export_rows(shape: str, queryset, file_format: str) -> bytes:
    """The rows of `queryset` in the shape's columns, as a CSV (UTF-8 with BOM, for Excel) or XLSX
    file. Cells starting with "=" lose it (IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT): a name is
    never a formula in the manager's spreadsheet."""
    dataset = RESOURCES[shape]().export(queryset=queryset)
    exported = FORMATS[file_format]().export_data(dataset)
    return ("\ufeff" + exported).encode() if isinstance(exported, str) else exported


def blank_dataset(shape: str) -> tablib.Dataset:
    """An empty file of the shape (its header row): the template a manager fills in."""
    return tablib.Dataset(headers=list(RESOURCES[shape]._meta.fields))
