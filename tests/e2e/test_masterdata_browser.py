"""A property manager onboards residents from a spreadsheet in Chromium: sign in with TOTP, open
"Spreadsheet imports", upload a CSV, read the preview (a row with a bad plate, a row with an
unknown flat), confirm, and find the residents, their flats and cars."""

import csv
import io

import pytest
from django.contrib.auth.models import Permission, User
from django_otp.oath import TOTP

from access.models import Resident, Vehicle
from access.services.companies import building_create, company_create, staff_membership_create, unit_create
from core.models import EncryptedTOTPDevice
from masterdata.models import SpreadsheetImport
from tests.e2e.test_admin_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "a long manager password 2026"
SCREENSHOT = "/tmp/masterdata-import-preview.png"


def seed():
    company = company_create(name="УК «Северный квартал»")
    building = building_create(company=company, name="Корпус 2", address="Москва, ул. Полярная, 7")
    for number in ("1", "2", "3"):
        unit_create(building=building, number=number)
    company_create(name="УК «Чужая»")
    manager = User.objects.create_user(username="manager", password=PASSWORD, is_staff=True)
    manager.user_permissions.set(Permission.objects.filter(
        content_type__app_label="access", codename__in=["add_resident", "change_resident", "view_resident"]))
    staff_membership_create(user=manager, company=company)
    device = EncryptedTOTPDevice.objects.create(user=manager, name="default", confirmed=True)
    return company, device


def spreadsheet(path) -> str:
    rows = [
        ["id", "full_name", "phone", "email", "building", "flat", "kind", "valid_from", "plates"],
        ["", "Иванова Мария Петровна", "+79160000001", "m.ivanova@example.ru", "Корпус 2", "1", "owner", "2026-01-01",
         "А123ВС77"],
        ["", "Петров Пётр Петрович", "+79160000002", "", "Корпус 2", "2", "tenant", "2026-01-01", "НЕ НОМЕР"],
        ["", "Сидорова Анна", "+79160000003", "", "Корпус 2", "99", "owner", "2026-01-01", ""],
        ["", "Кузнецов Олег", "+79160000004", "", "Корпус 2", "3", "owner", "2026-01-01", "В456ОР199; Е789КХ50"],
    ]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    target = path / "residents.csv"
    target.write_text(out.getvalue(), encoding="utf-8")
    return str(target)


def test_a_manager_previews_and_confirms_a_spreadsheet(live_server, transactional_db, monkeypatch, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    company, device = seed()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/admin/")
        page.fill("#id_auth-username", "manager")
        page.fill("#id_auth-password", PASSWORD)
        page.click("button[type=submit].btn-primary")
        page.wait_for_selector("#id_token-otp_token")
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        page.fill("#id_token-otp_token", f"{totp.token():06d}")
        page.click("button[type=submit].btn-primary")
        page.wait_for_url(f"{live_server.url}/admin/")

        page.goto(f"{live_server.url}/admin/masterdata/spreadsheetimport/")
        page.click("#masterdata-import-link")
        options = page.locator("#id_company option").all_inner_texts()
        assert "УК «Чужая»" not in options  # only the manager's own company is offered
        page.select_option("#id_company", str(company.pk))
        page.select_option("#id_shape", "residents")
        page.set_input_files("#id_file", spreadsheet(tmp_path))
        page.click("input[name=preview]")

        page.wait_for_selector("#import-summary")
        assert page.locator(".count-new").inner_text() == "2"
        assert page.locator(".count-error").inner_text() == "2"
        errors = page.locator("#import-rows tr.row-error").all_inner_texts()
        assert any("НЕ НОМЕР" in row for row in errors)
        assert any("no flat '99'" in row for row in errors)
        page.screenshot(path=SCREENSHOT, full_page=True)
        assert not Resident.objects.exists()  # the preview changed nothing

        page.click("input[name=confirm]")
        page.wait_for_selector(".messagelist .success")
        assert "2 new" in page.locator(".messagelist .success").inner_text()
        browser.close()

    assert Resident.objects.filter(company=company).count() == 2
    assert sorted(Vehicle.objects.values_list("plate", flat=True)) == ["A123BC77", "B456OP199", "E789KX50"]
    assert SpreadsheetImport.objects.get().status == "applied"
