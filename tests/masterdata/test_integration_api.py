"""The integration API for tenant-core (/integration/v1/records): idempotent upserts and deletions
by external id and version, per-record results, one transaction and one allowlist patch per
(partner, site) per batch, and the company each client may write."""

import json

import pytest
from django.utils import timezone

from access.models import AccessGrant, Building, ManagementCompany, Residency, Resident, Unit, Vehicle
from audit.models import AuditEvent
from masterdata.models import ExternalRef
from partners.models import OutboxMessage
from tests import factories
from tests.masterdata.conftest import (
    RECORDS,
    SOURCE,
    building,
    company,
    estate,
    residency,
    resident,
    unit,
    vehicle,
)

pytestmark = pytest.mark.django_db


def local(entity: str, external: str):
    ref = ExternalRef.objects.get(source=SOURCE, entity=entity, external_id=external)
    model = {"company": ManagementCompany, "building": Building, "unit": Unit, "resident": Resident,
             "residency": Residency, "vehicle": Vehicle}[entity]
    return model.objects.get(pk=ref.object_id)


def outcome(results) -> list[str]:
    return [result["result"] for result in results]


def world_size() -> tuple:
    return (ManagementCompany.objects.count(), Building.objects.count(), Unit.objects.count(),
            Resident.objects.count(), Residency.objects.count(), Vehicle.objects.count(),
            AccessGrant.objects.count(), AuditEvent.objects.count(), OutboxMessage.objects.count())


def test_a_new_estate_is_created_encrypted_and_indexed(north):
    results = north.results(estate())
    assert outcome(results) == ["created"] * 6
    person = local("resident", "R-1")
    assert (person.full_name, person.phone, person.email) == ("Иванова Мария Петровна", "+79160000001",
                                                             "m.ivanova@example.ru")
    with __import__("django.db").db.connection.cursor() as cursor:
        cursor.execute("SELECT full_name FROM access_resident WHERE id = %s", [person.pk])
        assert "Иванова" not in cursor.fetchone()[0]  # encrypted at rest
    stay = local("residency", "RS-1")
    assert (stay.resident_id, stay.unit_id, stay.kind) == (person.pk, local("unit", "U-1").pk, "owner")
    assert local("vehicle", "V-1").plate == "A123BC77"
    grant = AccessGrant.objects.get(residency=stay)  # the move-in grant, over the whole building
    assert grant.building_id == local("building", "B-1").pk
    from identity.contacts import PHONE, resident_ids_with

    assert resident_ids_with(PHONE, "8 (916) 000-00-01") == [person.pk]  # she can sign in with her phone
    created = AuditEvent.objects.filter(action="admin.change", reason="created")
    assert {event.object_type for event in created} >= {"company", "building", "unit", "resident", "residency",
                                                         "grant"}
    assert AuditEvent.objects.filter(action="resident.vehicle_create").count() == 1
    batch = AuditEvent.objects.get(action="masterdata.batch")
    assert batch.reason == "c6.u0.u0.s0.d0.e0"
    assert batch.object_ref == "source:tenant-core"


def test_a_repeated_batch_changes_nothing(north):
    north.results(estate())
    before = world_size()
    again = north.results(estate())
    assert outcome(again) == ["unchanged"] * 6
    after = world_size()
    assert after[:-2] == before[:-2]
    assert after[-1] == before[-1]
    assert after[-2] == before[-2] + 1  # only the batch's own audit event


def test_upserts_in_every_state(north):
    north.results(estate())
    renamed = resident(version=2, name="Петрова Мария Петровна")
    assert outcome(north.results([renamed])) == ["updated"]
    assert local("resident", "R-1").full_name == "Петрова Мария Петровна"
    # a newer version with the same content: nothing to change, the version is kept
    assert outcome(north.results([resident(version=3, name="Петрова Мария Петровна")])) == ["unchanged"]
    assert ExternalRef.objects.get(entity="resident", external_id="R-1").version == 3
    # an older version arriving late is reported and not applied
    assert outcome(north.results([resident(version=2, name="Сидорова")])) == ["stale"]
    assert local("resident", "R-1").full_name == "Петрова Мария Петровна"
    # a car deleted at the source, then an older upsert of it: still stale (the tombstone remembers)
    assert outcome(north.results([{**vehicle(version=5), "deleted": True}])) == ["deleted"]
    assert not Vehicle.objects.exists()
    assert outcome(north.results([vehicle(version=4)])) == ["stale"]
    assert outcome(north.results([{**vehicle(version=5), "deleted": True}])) == ["unchanged"]
    # a newer upsert after the deletion brings it back
    assert outcome(north.results([vehicle(version=6, plate="В456ОР199")])) == ["created"]
    assert local("vehicle", "V-1").plate == "B456OP199"
    # deleting what was never received is nothing to do, and remembered
    assert outcome(north.results([{"type": "vehicle", "id": "V-404", "version": 1, "deleted": True}])) == [
        "unchanged"]
    assert outcome(north.results([vehicle(external="V-404", version=1, plate="Е789КХ50")])) == ["unchanged"]
    assert not Vehicle.objects.filter(plate_index__isnull=False).exclude(pk=local("vehicle", "V-1").pk).exists()


def test_updated_at_orders_records_like_a_version(north):
    north.results(estate()[:3])
    first = {**resident(), "updated_at": "2026-11-30T10:00:00Z"}
    del first["version"]
    assert outcome(north.results([first])) == ["created"]
    older = {**first, "updated_at": "2026-11-30T09:59:59.999999Z", "full_name": "Старое Имя"}
    newer = {**first, "updated_at": "2026-11-30T10:00:00.000001+00:00", "full_name": "Новое Имя"}
    assert outcome(north.results([older, newer])) == ["stale", "updated"]
    assert local("resident", "R-1").full_name == "Новое Имя"


def test_within_one_batch_records_apply_in_dependency_order_and_versions_of_one_id_in_turn(north):
    records = [*list(reversed(estate())), resident(version=2, name="Вторая Версия"), resident(version=1)]
    results = north.results(records)
    assert outcome(results) == ["created"] * 6 + ["updated", "stale"]
    assert local("resident", "R-1").full_name == "Вторая Версия"


def test_a_bad_record_never_blocks_the_good_ones(north):
    north.results(estate())
    before = Resident.objects.count()
    records = [
        resident(external="R-2", phone="+79160000002"),
        vehicle(external="V-2", resident_="R-2", plate="НЕ НОМЕР"),
        residency(external="RS-2", resident_="R-2", unit_="U-404"),
        {**resident(external="R-3", phone="+79160000003"), "favourite_colour": "green"},
        resident(external="R-4", name="Имя\x00", phone="+79160000004"),
        {"type": "spaceship", "id": "S-1", "version": 1},
        {k: v for k, v in resident(external="R-5", phone="+79160000005").items() if k != "version"},
        resident(external="R-6", phone="+7 916 000-00-01"),  # R-1's phone
        resident(external="R-7", phone="+79160000007"),
        residency(external="RS-7", resident_="R-7", unit_="U-1", valid_from="2026-05-01", valid_until="2026-04-01"),
        "not a record",
        vehicle(external="V-7", resident_="R-7", plate="Е789КХ50"),
    ]
    results = north.results(records)
    assert outcome(results) == ["created", "error", "error", "error", "error", "error", "error", "error", "created",
                                "error", "error", "created"]
    codes = {result["index"]: {(e["field"], e["code"]) for e in result.get("errors", [])} for result in results}
    assert ("plate", "invalid_format") in codes[1] or any(f == "plate" for f, _ in codes[1])
    assert codes[2] == {("unit", "unknown_reference")}
    assert codes[3] == {("favourite_colour", "unknown_field")}
    assert codes[4] == {("full_name", "forbidden_character")}
    assert codes[5] == {("type", "invalid_choice")}
    assert codes[6] == {("version", "version")}
    assert codes[7] == {("phone", "duplicate_phone")}
    assert any(code for _, code in codes[9])
    assert Resident.objects.count() == before + 2
    assert not ExternalRef.objects.filter(external_id__in=["R-3", "R-4", "R-6", "RS-2", "RS-7", "V-2"]).exists()
    # the refused records can be sent again once corrected
    fixed = [resident(external="R-3", phone="+79160000003")]
    assert outcome(north.results(fixed)) == ["created"]


def test_two_records_of_one_batch_with_the_same_phone(north):
    north.results(estate()[:1])
    results = north.results([resident(external="R-8", phone="+79160000008"),
                             resident(external="R-9", phone="8 916 000 00 08")])
    assert outcome(results) == ["created", "error"]
    assert results[1]["errors"][0]["code"] == "duplicate_phone"


def test_a_plate_taken_at_a_partner_is_refused_and_the_rest_of_the_batch_goes_ahead(north):
    north.results(estate()[:4])
    partner = factories.partner()
    factories.contract(partner_=partner, company_=local("company", "TC-NORTH"), buildings=[local("building", "B-1")])
    north.results([residency()])
    results = north.results([vehicle(external="V-1", plate="А123ВС77"), vehicle(external="V-2", plate="A 123 BC 77"),
                             vehicle(external="V-3", plate="Е789КХ50")])
    assert outcome(results) == ["created", "error", "created"]
    assert results[1]["errors"] == [{"field": "plate", "code": "plate_taken",
                                     "detail": "This plate is already registered to another vehicle."}]


def test_references_that_never_change_are_refused(north):
    north.results([*estate(), unit(external="U-2", number="102")])
    moved = residency(version=2, unit_="U-2")
    results = north.results([moved])
    assert outcome(results) == ["error"]
    assert results[0]["errors"][0] == {"field": "unit", "code": "fixed", "detail": results[0]["errors"][0]["detail"]}
    assert local("residency", "RS-1").unit_id == local("unit", "U-1").pk


def test_ndjson_batches_and_a_line_that_is_no_json(north):
    lines = [json.dumps(record, ensure_ascii=False) for record in estate()]
    lines.insert(2, '{"type": "unit", "id": ')
    response = north.api.post(RECORDS, "\n".join(lines) + "\n", content_type="application/x-ndjson")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert outcome(results) == ["created", "created", "error", "created", "created", "created", "created"]
    assert results[2]["errors"] == [{"field": "", "code": "parse_error", "detail": "Line 3 is not JSON."}]


def test_a_batch_is_an_array_of_at_most_the_limit(north, settings):
    before = world_size()
    response = north.api.post(RECORDS, {"records": estate()}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0] == {"field": "records", "code": "unknown_field", "detail": "Unknown field."}
    settings.MASTERDATA_BATCH_MAX = 5
    response = north.send(estate())
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "too_many_records"
    response = north.api.post(RECORDS, "[1, 2", content_type="application/json")
    assert response.status_code == 400
    response = north.api.post(RECORDS, "a,b", content_type="text/csv")
    assert response.status_code == 415
    assert world_size() == before


def test_a_client_writes_only_its_own_companies(north, south):
    north.results(estate())
    before = world_size()
    results = south.results([
        company(name="Захват"),  # TC-NORTH: not south's
        building(external="B-9", company_="TC-NORTH"),
        resident(version=9, name="Чужая Жительница"),  # north's resident R-1
        {**resident(version=9), "deleted": True},
        residency(external="RS-9", resident_="R-1", unit_="U-1"),
        vehicle(external="V-9", resident_="R-1", plate="Е789КХ50"),
        unit(external="U-9", building_="B-1", number="999"),
    ])
    assert outcome(results) == ["error"] * 7
    assert all(result["errors"][0]["code"] == "company_not_allowed" for result in results), results
    assert world_size()[:-2] == before[:-2]
    assert world_size()[-1] == before[-1]
    assert local("resident", "R-1").full_name == "Иванова Мария Петровна"
    # its own company works
    assert outcome(south.results([company(external="TC-SOUTH", name="УК «Южная»")])) == ["created"]


def test_move_out_through_the_api_revokes_consents_and_patches_allowlists(north):
    north.results(estate()[:3])
    home = local("building", "B-1")
    partner = factories.partner()
    factories.contract(partner_=partner, company_=home.company, buildings=[home])
    factories.device(building_=home, partner_=partner, kind="barrier", partner_device_ref="gate-b1")
    north.results(estate()[3:])
    person = local("resident", "R-1")
    consent = factories.face_enrolment(resident_=person, partner_=partner, building_id=home.pk).consent
    token = local("vehicle", "V-1").plate_tokens.get().token
    patches = OutboxMessage.objects.filter(operation="allowlist_patch").count()
    today = timezone.localdate()
    results = north.results([residency(version=2, valid_until=today.isoformat())])
    assert outcome(results) == ["updated"]
    stay = local("residency", "RS-1")
    assert stay.valid_until == today
    assert AccessGrant.objects.get(residency=stay).valid_until <= timezone.now()
    consent.refresh_from_db()
    assert consent.revoked_at is not None
    assert consent.revoked_reason == "move_out"
    patch = OutboxMessage.objects.filter(operation="allowlist_patch").order_by("-pk").first()
    assert OutboxMessage.objects.filter(operation="allowlist_patch").count() == patches + 1
    assert {"type": "plate", "token": token} in patch.payload["removals"]
    assert patch.payload["upserts"] == []
    assert AuditEvent.objects.filter(action="admin.change", object_type="residency", reason="ended").exists()


def test_a_resident_deleted_at_the_source_is_erased_like_the_admin_does(north):
    north.results(estate()[:3])
    home = local("building", "B-1")
    partner = factories.partner()
    factories.contract(partner_=partner, company_=home.company, buildings=[home])
    north.results(estate()[3:])
    person = local("resident", "R-1")
    consent = factories.face_enrolment(resident_=person, partner_=partner, building_id=home.pk).consent
    token = local("vehicle", "V-1").plate_tokens.get().token
    results = north.results([{"type": "resident", "id": "R-1", "version": 2, "deleted": True}])
    assert outcome(results) == ["deleted"]
    assert not Resident.objects.filter(pk=person.pk).exists()
    consent.refresh_from_db()
    assert consent.revoked_reason == "deleted"
    patch = OutboxMessage.objects.filter(operation="allowlist_patch").order_by("-pk").first()
    assert {"type": "plate", "token": token} in patch.payload["removals"]
    assert ExternalRef.objects.get(entity="resident", external_id="R-1").deleted
    # the residency and car went with her: their deletions are nothing left to do
    later = [{"type": "residency", "id": "RS-1", "version": 2, "deleted": True},
             {"type": "vehicle", "id": "V-1", "version": 2, "deleted": True}]
    assert outcome(north.results(later)) == ["unchanged", "unchanged"]


def test_companies_buildings_and_flats_are_not_deleted_through_the_api(north):
    north.results(estate())
    results = north.results([{"type": kind, "id": ident, "version": 9, "deleted": True}
                             for kind, ident in (("company", "TC-NORTH"), ("building", "B-1"), ("unit", "U-1"))])
    assert outcome(results) == ["error"] * 3
    assert {result["errors"][0]["code"] for result in results} == {"delete_not_supported"}


def test_one_allowlist_patch_per_partner_and_site_per_batch(north):
    north.results([*estate()[:3], building(external="B-2", name="Корпус 2"), unit(external="U-2", building_="B-2")])
    partner = factories.partner()
    factories.contract(partner_=partner, company_=local("company", "TC-NORTH"),
                       buildings=[local("building", "B-1"), local("building", "B-2")])
    for name in ("B-1", "B-2"):
        factories.device(building_=local("building", name), partner_=partner, kind="barrier")
    before = OutboxMessage.objects.filter(operation="allowlist_patch").count()
    records = []
    for n in range(12):
        records += [resident(external=f"R-{n}", phone=f"+7916555{n:04d}"),
                    residency(external=f"RS-{n}", resident_=f"R-{n}", unit_="U-1" if n % 2 else "U-2"),
                    vehicle(external=f"V-{n}", resident_=f"R-{n}", plate=factories.unique_plate())]
    answer = north.send(records).json()
    assert answer["counts"]["created"] == 36
    assert answer["allowlist_patches"] == 2
    patches = OutboxMessage.objects.filter(operation="allowlist_patch").order_by("pk")[before:]
    assert len(patches) == 2
    assert sorted(len(patch.payload["upserts"]) for patch in patches) == [6, 6]
    assert {patch.ordering_key for patch in patches} == {"allowlist:building-" + str(local("building", b).pk)
                                                         for b in ("B-1", "B-2")}


@pytest.mark.parametrize("scope", ["", "devices:read", "audit:export"])
def test_a_token_without_the_scope_is_refused(north, scope):
    from tests.masterdata.conftest import token_for

    before = world_size()
    north.api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(north.application, scope)}")
    response = north.send(estate())
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/missing-scope"
    assert world_size() == before


def test_no_token_is_401(north):
    north.api.credentials()
    assert north.send(estate()).status_code == 401
    assert not Resident.objects.exists()


def test_a_client_not_configured_or_a_partner_is_refused(north, settings):
    from partners.models import PartnerApplication
    from tests.masterdata.conftest import token_for

    settings.MASTERDATA_CLIENTS = {}
    assert north.send(estate()).status_code == 403
    settings.MASTERDATA_CLIENTS = {north.client_id: {"source": SOURCE, "companies": ["TC-NORTH"]}}
    PartnerApplication.objects.create(partner=factories.partner(), application=north.application)
    north.api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(north.application)}")
    response = north.send(estate())
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/not-an-integration-client"
    assert not Resident.objects.exists()


def test_the_client_gets_its_token_with_client_credentials(north, client):
    response = client.post("/o/token/", {"grant_type": "client_credentials", "scope": "masterdata:write"},
                           HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(
                               f"{north.client_id}:{north.secret}".encode()).decode())
    assert response.status_code == 200, response.content
    token = response.json()
    assert token["scope"] == "masterdata:write"
    north.api.credentials(HTTP_AUTHORIZATION=f"Bearer {token['access_token']}")
    assert north.send(estate()).status_code == 200
    refused = client.post("/o/token/", {"grant_type": "client_credentials", "scope": "audit:export"},
                          HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(
                              f"{north.client_id}:{north.secret}".encode()).decode())
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"


def test_a_batch_larger_than_a_chunk_gives_the_results_one_chunk_would(north, settings):
    """Chunks are looked up and written one after another: a phone claimed in an earlier chunk, a
    reference to a row of an earlier chunk, a bad row in the middle and a later version of an id
    across chunks behave as in one chunk; the batch is still one allowlist patch per site."""
    north.results(estate()[:3])
    partner = factories.partner()
    factories.contract(partner_=partner, company_=local("company", "TC-NORTH"), buildings=[local("building", "B-1")])
    settings.MASTERDATA_CHUNK_SIZE = 2
    records = [
        unit(external="U-2", number="102"),
        unit(external="U-3", number="103"),
        unit(external="U-4", number="104"),
        resident(external="R-1", phone="+79160000001"),
        resident(external="R-2", phone="+79160000002"),
        resident(external="R-3", phone="+7 916 000-00-01"),  # R-1's phone, two chunks later
        resident(external="R-4", phone="+79160000004"),
        resident(external="R-1", version=2, name="Петрова Мария Петровна"),  # a later version, another chunk
        residency(external="RS-1", resident_="R-1", unit_="U-2"),
        residency(external="RS-2", resident_="R-2", unit_="U-3"),
        residency(external="RS-3", resident_="R-3", unit_="U-4"),  # its resident was refused
        residency(external="RS-4", resident_="R-4", unit_="U-4"),
        vehicle(external="V-1", resident_="R-1", plate="А123ВС77"),
        vehicle(external="V-2", resident_="R-2", plate="НЕ НОМЕР"),
        vehicle(external="V-4", resident_="R-4", plate="Е789КХ50"),
    ]
    patches = OutboxMessage.objects.filter(operation="allowlist_patch").count()
    results = north.results(records)
    assert outcome(results) == ["created"] * 5 + ["error", "created", "updated", "created", "created", "error",
                                                   "created", "created", "error", "created"]
    assert results[5]["errors"][0]["code"] == "duplicate_phone"
    assert results[10]["errors"][0] == {"field": "resident", "code": "unknown_reference",
                                        "detail": results[10]["errors"][0]["detail"]}
    assert results[13]["errors"][0]["field"] == "plate"
    assert local("resident", "R-1").full_name == "Петрова Мария Петровна"
    assert Resident.objects.count() == 3
    assert sorted(Vehicle.objects.values_list("plate", flat=True)) == ["A123BC77", "E789KX50"]
    assert OutboxMessage.objects.filter(operation="allowlist_patch").count() == patches + 1
    # the same batch again, in chunks: nothing changes (R-1's first version is now older than the one held)
    before = world_size()
    again = ["unchanged"] * 3 + ["stale", "unchanged", "error", "unchanged", "unchanged", "unchanged", "unchanged",
                                 "error", "unchanged", "unchanged", "error", "unchanged"]
    assert outcome(north.results(records)) == again
    assert world_size()[:-2] == before[:-2]
    assert world_size()[-1] == before[-1]
