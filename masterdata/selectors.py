"""Reads of the master-data app: the nightly reconciliation of one building with the source, and
the rows a spreadsheet export lists."""

from itertools import islice

from access.models import Device, Residency, Resident, Unit, Vehicle
from masterdata.clients import IntegrationClient
from masterdata.models import Entity, ExternalRef
from masterdata.records import version_of

LOOKUP_CHUNK = 5000


def _chunks(values: list, size: int = LOOKUP_CHUNK):
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk


def building_records(*, source: str, building_id: int) -> dict[tuple[str, str], int]:
    """The live records of `source` we hold for one building, (type, id) -> version: the building,
    its flats, the residencies in them, those residencies' residents and the residents' cars."""
    residencies = list(Residency.objects.filter(unit__building_id=building_id).values_list("pk", "resident_id"))
    resident_ids = {resident_id for _, resident_id in residencies}
    objects = {
        Entity.BUILDING: [building_id],
        Entity.UNIT: list(Unit.objects.filter(building_id=building_id).values_list("pk", flat=True)),
        Entity.RESIDENCY: [pk for pk, _ in residencies],
        Entity.RESIDENT: sorted(resident_ids),
        Entity.VEHICLE: list(Vehicle.objects.filter(resident_id__in=resident_ids).values_list("pk", flat=True)),
    }
    held = {}
    for entity, ids in objects.items():
        for chunk in _chunks(ids):
            for external, version in ExternalRef.objects.filter(
                source=source, entity=entity, object_id__in=chunk, deleted=False
            ).values_list("external_id", "version"):
                held[(entity, external)] = version
    return held


def building_reconciliation(*, client: IntegrationClient, building: str, records: list[dict]) -> dict | None:
    """Compare the source's (type, id, version) list for one building with what we hold.

    None when the building is unknown to the client's source or belongs to a company the client
    may not write (the same answer: not found). Otherwise {matching, differ, missing, unexpected}
    (see masterdata.api.ReconciliationApi)."""
    ref = ExternalRef.objects.filter(source=client.source, entity=Entity.BUILDING, external_id=building,
                                     deleted=False).first()
    if ref is None or ref.company_id not in client.company_ids():
        return None
    ours = building_records(source=client.source, building_id=ref.object_id)
    given = {(item["type"], item["id"]): version_of(item) for item in records}
    anywhere = dict(ours)
    by_entity: dict[str, list[str]] = {}
    for entity, external in given:
        if (entity, external) not in anywhere:
            by_entity.setdefault(entity, []).append(external)
    for entity, externals in by_entity.items():
        for chunk in _chunks(externals):
            for external, version in ExternalRef.objects.filter(
                source=client.source, entity=entity, external_id__in=chunk, deleted=False
            ).values_list("external_id", "version"):
                anywhere[(entity, external)] = version
    matching, differ, missing = 0, [], []
    for (entity, external), version in given.items():
        held = anywhere.get((entity, external))
        if held is None:
            missing.append({"type": entity, "id": external})
        elif held != version:
            differ.append({"type": entity, "id": external, "version": held})
        else:
            matching += 1
    unexpected = [{"type": entity, "id": external, "version": version}
                  for (entity, external), version in sorted(ours.items()) if (entity, external) not in given]
    return {"matching": matching, "differ": differ, "missing": missing, "unexpected": unexpected}


def export_queryset(*, shape: str, company):
    """The rows of one company that an export of `shape` lists (masterdata.resources)."""
    if shape == "residents":
        return (Resident.objects.filter(company=company).order_by("pk")
                .prefetch_related("residencies__unit__building", "vehicles"))
    if shape == "buildings":
        return Unit.objects.filter(building__company=company).select_related("building").order_by("building__name",
                                                                                                   "number")
    return Device.objects.filter(building__company=company).select_related("building", "partner").order_by("pk")
