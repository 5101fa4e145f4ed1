"""The admin's spreadsheet import and export: preview with per-row errors (a dry run that changes
nothing), confirm through the services, one audit event with counts, admin history per object,
a manager's own company only, invitations in the same step, export without secrets."""

import csv
import io

import pytest
import tablib
from auditlog.models import LogEntry
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client

from access.models import AccessGrant, Building, Device, Residency, Resident, Unit, Vehicle
from audit.models import AuditEvent
from core.security.roles import PROPERTY_MANAGER
from identity.contacts import PHONE, resident_ids_with
from identity.models import Invitation
from masterdata.models import SpreadsheetImport
from masterdata.resources import export_rows
from masterdata.selectors import export_queryset
from masterdata.services.imports import import_confirm, import_preview
from partners.models import OutboxMessage
from tests import factories
from tests.admin.conftest import login_verified

pytestmark = pytest.mark.django_db

HEADER = ["id", "full_name", "phone", "email", "building", "flat", "kind", "valid_from", "plates"]


def csv_bytes(rows, header=HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


@pytest.fixture
def complex_(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    company = factories.company(name="УК «Северная»")
    home = factories.building(company_=company, name="Корпус 1")
    for number in ("101", "102", "103"):
        factories.unit(building_=home, number=number)
    partner = factories.partner(slug="sandbox-tests")
    factories.contract(partner_=partner, company_=company, buildings=[home])
    factories.device(building_=home, partner_=partner, kind="barrier", partner_device_ref="gate-1")
    manager = factories.staff_user(username="manager", company_=company, role=PROPERTY_MANAGER)
    Group.objects.get(name=PROPERTY_MANAGER)  # the role's permissions are installed
    other = factories.company(name="УК «Южная»")
    stranger = factories.resident(company_=other, phone="+79169999999")
    return {"company": company, "home": home, "partner": partner, "manager": manager, "other": other,
            "stranger": stranger}


def world_size():
    return (Resident.objects.count(), Residency.objects.count(), Vehicle.objects.count(), AccessGrant.objects.count(),
            AuditEvent.objects.count(), OutboxMessage.objects.count(), LogEntry.objects.count())


GOOD = [
    ["", "Иванова Мария Петровна", "+79160000001", "m@example.ru", "Корпус 1", "101", "owner", "2026-01-01",
     "А123ВС77; В456ОР199"],
    ["", "Петров Пётр", "8 916 000 00 02", "", "Корпус 1", "102", "tenant", "", ""],
]
BAD = [
    ["", "Плохой Номер", "+79160000003", "", "Корпус 1", "103", "owner", "2026-01-01", "НЕ НОМЕР"],
    ["", "Нет Квартиры", "+79160000004", "", "Корпус 1", "999", "owner", "", ""],
    ["", "Чужой Телефон", "+7 916 999-99-99", "", "", "", "", "", ""],
    ["", "Повтор Телефона", "+79160000001", "", "", "", "", "", ""],
    ["{stranger}", "Чужой Житель", "", "", "", "", "", "", ""],
    ["", "", "+79160000006", "", "", "", "", "", ""],
    ["", "Плохая Дата", "", "", "Корпус 1", "103", "owner", "01.02.2026", ""],
]


def rows_with_stranger(world):
    return GOOD + [[cell.format(stranger=world["stranger"].pk) for cell in row] for row in BAD]


def test_the_preview_checks_every_row_and_changes_nothing(complex_):
    before = world_size()
    pending, outcome = import_preview(user=complex_["manager"], company=complex_["company"], shape="residents",
                                      data=csv_bytes(rows_with_stranger(complex_)), file_format="csv",
                                      file_name="residents.csv")
    assert world_size() == before
    assert outcome.counts == {"new": 2, "update": 0, "unchanged": 0, "error": 7}
    errors = {row.row: " ".join(row.errors) for row in outcome.rows if row.errors}
    assert "plates: 'НЕ НОМЕР'" in errors[4]
    assert "no flat '999' in building 'Корпус 1'" in errors[5]
    assert "another resident already has this phone number" in errors[6]
    assert "the same as row 2" in errors[7]
    assert "belongs to another management company" in errors[8]
    assert "full_name: required" in errors[9]
    assert "valid_from" in errors[10]
    assert outcome.allowlist_patches == 1  # what the confirmation will send: one patch for the site
    assert pending.status == "previewed"
    assert pending.rows == 9
    assert "Иванова" not in SpreadsheetImport.objects.filter(pk=pending.pk).values_list("payload", flat=True)[0]


def test_confirm_applies_the_good_rows_through_the_services(complex_):
    manager = complex_["manager"]
    pending, _ = import_preview(user=manager, company=complex_["company"], shape="residents",
                                data=csv_bytes(rows_with_stranger(complex_)), file_format="csv")
    patches = OutboxMessage.objects.filter(operation="allowlist_patch").count()
    outcome = import_confirm(user=manager, pending=pending)
    assert outcome.counts == {"new": 2, "update": 0, "unchanged": 0, "error": 7}
    maria = Resident.objects.get(pk=resident_ids_with(PHONE, "+79160000001")[0])
    assert maria.full_name == "Иванова Мария Петровна"
    home = maria.residencies.get()
    assert (home.unit.number, home.kind) == ("101", "owner")
    assert AccessGrant.objects.filter(residency=home, building=complex_["home"]).exists()
    assert sorted(vehicle.plate for vehicle in maria.vehicles.all()) == ["A123BC77", "B456OP199"]
    assert all(vehicle.plate_tokens.count() == 1 for vehicle in maria.vehicles.all())
    assert OutboxMessage.objects.filter(operation="allowlist_patch").count() == patches + 1
    event = AuditEvent.objects.get(action="masterdata.import")
    assert event.reason == "residents.n2.u0.s0.e7.i0"
    assert event.object_ref == f"spreadsheet_import:{pending.pk}"
    assert event.company_id == complex_["company"].pk
    assert event.actor_kind == "staff"
    # each created object keeps its admin history
    for obj in (maria, home, *maria.vehicles.all()):
        entry = LogEntry.objects.get_for_object(obj).get()
        assert entry.action == LogEntry.Action.CREATE
    assert LogEntry.objects.get_for_object(maria).get().changes_dict["phone"][1] == "[encrypted]"
    pending.refresh_from_db()
    assert pending.status == "applied"
    assert pending.payload == ""
    assert pending.counts["new"] == 2
    with pytest.raises(PermissionDenied):
        import_confirm(user=manager, pending=pending)  # once


def test_an_export_imported_again_changes_nothing_and_an_edit_changes_its_rows(complex_):
    manager, company = complex_["manager"], complex_["company"]
    pending, _ = import_preview(user=manager, company=company, shape="residents", data=csv_bytes(GOOD),
                                file_format="csv")
    import_confirm(user=manager, pending=pending)
    exported = export_rows("residents", export_queryset(shape="residents", company=company), "csv")
    rows = list(csv.reader(io.StringIO(exported.decode("utf-8-sig"))))
    assert rows[0] == HEADER
    before = world_size()
    _, outcome = import_preview(user=manager, company=company, shape="residents", data=exported, file_format="csv")
    assert outcome.counts == {"new": 0, "update": 0, "unchanged": 2, "error": 0}
    assert world_size()[:4] == before[:4]
    maria = next(row for row in rows[1:] if row[1].startswith("Иванова"))
    maria[2], maria[8] = "+79160000009", "Е789КХ50; А123ВС77"
    pending, outcome = import_preview(user=manager, company=company, shape="residents",
                                      data=csv_bytes(rows[1:]), file_format="csv")
    assert outcome.counts["update"] == 1
    import_confirm(user=manager, pending=pending)
    person = Resident.objects.get(pk=int(maria[0]))
    assert person.phone == "+79160000009"
    assert sorted(v.plate for v in person.vehicles.all()) == ["A123BC77", "E789KX50"]
    assert AuditEvent.objects.filter(action="resident.vehicle_delete").count() == 1


def test_xlsx_files_are_read_too(complex_):
    book = tablib.Dataset(*GOOD, headers=HEADER).export("xlsx")
    _, outcome = import_preview(user=complex_["manager"], company=complex_["company"], shape="residents",
                                data=book, file_format="xlsx")
    assert outcome.counts["new"] == 2


def test_a_manager_imports_only_into_their_own_company(complex_):
    before = world_size()
    with pytest.raises(PermissionDenied):
        import_preview(user=complex_["manager"], company=complex_["other"], shape="residents", data=csv_bytes(GOOD),
                       file_format="csv")
    pending, _ = import_preview(user=complex_["manager"], company=complex_["company"], shape="residents",
                                data=csv_bytes(GOOD), file_format="csv")
    intruder = factories.staff_user(username="intruder", company_=complex_["company"], role=PROPERTY_MANAGER)
    with pytest.raises(PermissionDenied):
        import_confirm(user=intruder, pending=pending)  # only whoever previewed it confirms it
    assert world_size()[:4] == before[:4]


def test_a_file_with_other_columns_is_refused(complex_):
    with pytest.raises(ValidationError) as refused:
        import_preview(user=complex_["manager"], company=complex_["company"], shape="residents",
                       data=csv_bytes([["x"]], header=["name", "telephone"]), file_format="csv")
    assert "unknown: name, telephone" in refused.value.messages[0]
    with pytest.raises(ValidationError):
        import_preview(user=complex_["manager"], company=complex_["company"], shape="residents",
                       data=b"PK\x03\x04 not really a workbook", file_format="xlsx")


def test_new_residents_can_be_invited_in_the_same_step(complex_, settings, mailoutbox):
    settings.IDENTITY_OIDC_ISSUER = ""
    pending, _ = import_preview(user=complex_["manager"], company=complex_["company"], shape="residents",
                                data=csv_bytes(GOOD), file_format="csv", invite_channel="email")
    outcome = import_confirm(user=complex_["manager"], pending=pending)
    assert (outcome.invited, outcome.invitations_refused) == (1, 1)  # Пётр has no e-mail
    assert Invitation.objects.get().resident.full_name == "Иванова Мария Петровна"


def test_buildings_with_flats_and_devices_with_partner_refs(complex_):
    manager, company = complex_["manager"], complex_["company"]
    data = csv_bytes([["", "Корпус 2", "Москва, ул. Полярная, 9", "Europe/Moscow", "1"],
                      ["", "Корпус 2", "Москва, ул. Полярная, 9", "Europe/Moscow", "2"],
                      ["", "Корпус 1", "", "", "104"],
                      [str(factories.building().pk), "Чужой", "", "", "1"]],
                     header=["id", "building", "address", "timezone", "flat"])
    pending, outcome = import_preview(user=manager, company=company, shape="buildings", data=data, file_format="csv")
    assert outcome.counts == {"new": 3, "update": 0, "unchanged": 0, "error": 1}
    import_confirm(user=manager, pending=pending)
    second = Building.objects.get(company=company, name="Корпус 2")
    assert sorted(second.units.values_list("number", flat=True)) == ["1", "2"]
    assert Unit.objects.filter(building=complex_["home"], number="104").exists()
    devices = csv_bytes([["", "Корпус 2", "barrier", "Въезд", "sandbox-tests", "gate-2"],
                         ["", "Корпус 2", "barrier", "Выезд", "no-such-partner", "gate-3"]],
                        header=["id", "building", "kind", "name", "partner", "partner_device_ref"])
    pending, outcome = import_preview(user=manager, company=company, shape="devices", data=devices, file_format="csv")
    assert outcome.counts == {"new": 1, "update": 0, "unchanged": 0, "error": 1}
    import_confirm(user=manager, pending=pending)
    assert Device.objects.get(partner_device_ref="gate-2").building == second
    exported = export_rows("devices", export_queryset(shape="devices", company=company), "csv").decode("utf-8-sig")
    assert exported.splitlines()[0] == "id,building,kind,name,partner,partner_device_ref"
    assert "secret" not in exported.lower()
    assert "gate-2" in exported


def test_an_exported_cell_is_never_a_formula(complex_):
    factories.resident(company_=complex_["company"], full_name="=HYPERLINK(\"http://evil\")")
    exported = export_rows("residents", export_queryset(shape="residents", company=complex_["company"]), "csv")
    assert "=HYPERLINK" not in exported.decode("utf-8-sig")


# --- the admin pages ------------------------------------------------------------------------------


def test_the_admin_pages_preview_confirm_and_export(complex_):
    manager = complex_["manager"]
    client = login_verified(Client(), manager)
    page = client.get("/admin/masterdata/import/")
    assert page.status_code == 200
    assert "УК «Южная»" not in page.content.decode()  # only the manager's own companies are offered
    upload = io.BytesIO(csv_bytes(rows_with_stranger(complex_)))
    upload.name = "residents.csv"
    preview = client.post("/admin/masterdata/import/", {"company": complex_["company"].pk, "shape": "residents",
                                                         "file": upload, "invite": ""})
    assert preview.status_code == 200
    body = preview.content.decode()
    assert 'class="count-new">2<' in body
    assert 'class="count-error">7<' in body
    assert not Resident.objects.filter(company=complex_["company"]).exists()
    pending = SpreadsheetImport.objects.get()
    done = client.post(f"/admin/masterdata/import/{pending.pk}/confirm/", {"confirm": "1"})
    assert done.status_code == 302
    assert Resident.objects.filter(company=complex_["company"]).count() == 2
    listing = client.get("/admin/masterdata/spreadsheetimport/")
    assert listing.status_code == 200
    assert "masterdata-import-link" in listing.content.decode()
    exported = client.get("/admin/masterdata/export/", {"company": complex_["company"].pk, "shape": "residents",
                                                        "file_format": "xlsx"})
    assert exported.status_code == 200
    assert exported["Content-Disposition"].endswith('.xlsx"')
    assert len(tablib.Dataset().load(exported.content, format="xlsx")) == 2
    foreign = client.get("/admin/masterdata/export/", {"company": complex_["other"].pk, "shape": "residents",
                                                       "file_format": "csv"})
    assert foreign.status_code == 200
    assert "attachment" not in foreign.get("Content-Disposition", "")


def test_another_managers_pending_import_is_not_found(complex_):
    pending, _ = import_preview(user=complex_["manager"], company=complex_["company"], shape="residents",
                                data=csv_bytes(GOOD), file_format="csv")
    intruder = factories.staff_user(username="intruder", company_=complex_["company"], role=PROPERTY_MANAGER)
    client = login_verified(Client(), intruder)
    response = client.post(f"/admin/masterdata/import/{pending.pk}/confirm/", {"confirm": "1"})
    assert response.status_code == 404
    assert not Resident.objects.filter(company=complex_["company"]).exists()


def test_an_unverified_session_never_reaches_the_import(complex_):
    client = Client()
    client.force_login(complex_["manager"], backend="django.contrib.auth.backends.ModelBackend")
    response = client.get("/admin/masterdata/import/")
    assert response.status_code == 302
