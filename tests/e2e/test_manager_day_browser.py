"""A property manager's day in the portal, in Russian, in Chromium: find a resident by phone, add a
car, create and revoke a guest pass, open the barrier for a courier (the sandbox partner over
HTTPS + mTLS), read the device's timeline, export the month's audit. Every page answers below
500, keeps the strict CSP, and shows no text of ours in English; a second company's manager sees
none of it. Screenshots of every step are saved under `artifacts/manager-day/` (ignored by git;
the main ones are copied by hand to docs/screenshots/ for docs/portal.md)."""

from __future__ import annotations

import datetime
import secrets
import zoneinfo
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from django_otp.oath import TOTP

from access.models import Building, Device, GuestPass, Resident, Vehicle
from access.plates import normalise_plate
from access.reasons import Reason
from access.services.devices import device_create, device_set_online
from audit.actions import Action, ActorKind, Outcome
from audit.models import AuditEvent
from partners import services as partner_services
from tests.access.api.test_devices_open import opens
from tests.admin.conftest import PASSWORD, make_company_world, staff_user, totp_device
from tests.e2e.test_admin_browser import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.test_csp_browser import PageWatch
from tests.partners.outbox_fixtures import client_settings, sandbox_partner  # noqa: F401 - fixtures
from tests.translations import ROOT, english_on, english_texts

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres,
              pytest.mark.language("ru")]

SCREENSHOTS = ROOT / "artifacts" / "manager-day"
COURIER_PLATE = "К 555 РУ 77"
NEW_CAR = "Т 321 ОР 197"
# what the barrier decided over the day: mostly residents' cars, some guests, a few refusals
DAY_REASONS = ["granted"] * 6 + ["guest_pass", "unknown_credential", "granted", "outside_schedule", "no_grant"]


class Portal:
    """One signed-in manager's browser tab: every page it shows is checked the same way."""

    def __init__(self, browser, live_server, user, device, shots: Path | None):
        self.url = live_server.url
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ru-RU",
                                           timezone_id=settings.PORTAL_TIME_ZONE, accept_downloads=True)
        self.page = self.context.new_page()
        self.watch = PageWatch(self.page)
        self.server_errors: list[str] = []
        self.page.on("response", lambda r: r.status >= 500 and self.server_errors.append(f"{r.status} {r.url}"))
        self.forbidden = english_texts()
        self.shots = shots
        self.sign_in(user, device)

    def sign_in(self, user, device):
        self.page.goto(f"{self.url}/admin/")
        self.page.fill("#id_auth-username", user.username)
        self.page.fill("#id_auth-password", PASSWORD)
        self.page.click("button[type=submit].btn-primary")
        self.page.wait_for_selector("#id_token-otp_token")
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        self.page.fill("#id_token-otp_token", f"{totp.token():06d}")
        self.page.click("button[type=submit].btn-primary")
        self.page.wait_for_url(f"{self.url}/admin/")
        self.check("index")

    def goto(self, path: str, label: str):
        response = self.page.goto(f"{self.url}{path}")
        self.check(label)
        return response

    def check(self, label: str) -> None:
        """The page shown: no server error, the strict CSP unbroken, Russian with nothing of ours
        left in English; a screenshot of it."""
        self.watch.check(label)
        assert self.server_errors == [], label
        assert self.page.locator("html").get_attribute("lang") == "ru", label
        assert english_on(self.page.inner_text("body"), self.forbidden) == [], label
        # readable on a 1280 px screen: nothing cut off at the right
        assert self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), label
        if self.shots is not None:
            self.page.screenshot(path=str(self.shots / f"{label}.png"), full_page=True)


def seed_day(sandbox_partner, clean_sandbox):  # noqa: F811
    """Companies A and B (tests/admin/conftest.py) and, at A's building, a barrier and a door of
    the sandbox partner under a contract that allows remote opening; a day of decisions."""
    world = {"a": make_company_world("a"), "b": make_company_world("b")}
    building = world["a"][Building]
    partner_services.partner_contract_create(
        partner=sandbox_partner, company=building.company, buildings=[building], purpose="Шлагбаум и домофон",
        retention_days=30, agreement_ref="SB-2026-07", allows_open=True, allows_plate=True,
    )
    devices = {}
    for kind, name in ((Device.Kind.BARRIER, "Шлагбаум, въезд с Полярной"), (Device.Kind.INTERCOM_DOOR, "Подъезд 1")):
        ref = f"{kind}-{secrets.token_hex(3)}"
        clean_sandbox.control.put_device(ref, online=True)
        devices[kind] = device_create(building=building, kind=kind, name=name, partner=sandbox_partner,
                                      partner_device_ref=ref)
        device_set_online(device=devices[kind], online=True)
    now = timezone.now()
    for minutes in range(0, 600, 7):
        reason = DAY_REASONS[minutes % len(DAY_REASONS)]
        AuditEvent.objects.create(
            occurred_at=now - datetime.timedelta(minutes=minutes), actor_kind=ActorKind.PARTNER,
            action=Action.ACCESS_DECISION, outcome=Outcome.SUCCESS if Reason(reason).allows else Outcome.DENIED,
            reason=reason, company_id=building.company_id, building_id=building.pk,
            partner_id=sandbox_partner.pk, device_ref=devices[Device.Kind.BARRIER].partner_device_ref,
        )
    return world, devices[Device.Kind.BARRIER]


def moscow_now() -> datetime.datetime:
    return timezone.localtime(timezone=zoneinfo.ZoneInfo(settings.PORTAL_TIME_ZONE))


def choose(page, field: str, typed: str, option: str) -> None:
    """Pick `option` in the admin's autocomplete (select2) for `field`, typing `typed`."""
    page.click(f"#id_{field} + .select2 .select2-selection")
    page.fill(".select2-container--open .select2-search__field", typed)
    page.click(f".select2-results__option:has-text('{option}')")


def test_a_managers_day_in_russian(live_server, transactional_db, sandbox_partner, clean_sandbox,  # noqa: F811
                                   monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread
    world, barrier = seed_day(sandbox_partner, clean_sandbox)
    resident = world["a"][Resident]
    manager = staff_user("manager-a", company=world["a"][Building].company, roles=["property manager"])
    manager_device = totp_device(manager)
    other = staff_user("manager-b", company=world["b"][Building].company, roles=["property manager"])
    other_device = totp_device(other)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        portal = Portal(browser, live_server, manager, manager_device, SCREENSHOTS)
        page = portal.page

        # the company's dashboard, then the building's
        portal.goto("/admin/dashboard/", "01-dashboard-company")
        portal.goto(f"/admin/dashboard/{barrier.building_id}/", "02-dashboard-building")
        assert page.locator("svg").count() >= 2

        # find a resident by phone, as the caller says it
        portal.goto("/admin/access/resident/", "03-residents")
        page.fill("#searchbar", "8 (916) 000-00-07")
        page.press("#searchbar", "Enter")
        page.wait_for_load_state("load")
        portal.check("04-resident-found")
        page.click(f"#result_list a:has-text('{resident.full_name}')")
        page.wait_for_selector("#resident-facts")
        portal.check("05-resident-card")

        # add a car from the resident's page: back on the page, with the car
        page.click("#add-vehicle")
        page.wait_for_selector("#id_plate")
        portal.check("06-vehicle-add")
        assert page.locator("#id_plate").evaluate("e => e.tagName") == "INPUT"  # one line, not a textarea
        page.fill("#id_plate", NEW_CAR)
        page.fill("#id_label", "вторая машина")
        page.click("input[name=_save]")
        page.wait_for_selector("#resident-vehicles")
        portal.check("07-resident-card-with-car")
        assert page.locator("#resident-vehicles").inner_text().count(normalise_plate(NEW_CAR)) == 1
        assert Vehicle.objects.filter(resident=resident).count() == 2

        # create a guest pass for a courier, for the next three hours on the managers' clock
        page.click("#add-guest-pass")
        page.wait_for_selector("#id_plate")
        choose(page, "device", "Шлагбаум, въезд", barrier.name)
        start, end = moscow_now() + datetime.timedelta(minutes=5), moscow_now() + datetime.timedelta(hours=3)
        page.fill("#id_plate", COURIER_PLATE)
        page.fill("#id_label", "курьер")
        page.fill("#id_valid_from_0", start.strftime("%d.%m.%Y"))
        page.fill("#id_valid_from_1", start.strftime("%H:%M:%S"))
        page.fill("#id_valid_until_0", end.strftime("%d.%m.%Y"))
        page.fill("#id_valid_until_1", end.strftime("%H:%M:%S"))
        portal.check("08-guest-pass-add")
        page.click("input[name=_save]")
        page.wait_for_load_state("load")
        assert page.locator(".errorlist, .errornote").count() == 0, page.locator("#content-main").inner_text()
        page.wait_for_selector("#resident-passes")
        portal.check("09-resident-card-with-pass")
        created = GuestPass.objects.get(resident=resident, device=barrier)
        assert created.revoked_at is None
        assert abs(created.valid_from - start) < datetime.timedelta(seconds=1)  # read on the managers' clock
        assert AuditEvent.objects.filter(action=Action.RESIDENT_GUEST_PASS_CREATE, actor_kind=ActorKind.STAFF).exists()

        # ... and revoke it
        row = page.locator("#resident-passes tr", has_text=normalise_plate(COURIER_PLATE))
        row.locator("button.revoke-pass").click()
        page.wait_for_selector("#resident-passes")
        portal.check("10-guest-pass-revoked")
        created.refresh_from_db()
        assert created.revoked_at is not None
        assert row.locator("button.revoke-pass").count() == 0

        # open the barrier for a courier, from the device's page; the timeline shows it
        portal.goto(f"/admin/access/device/{barrier.pk}/card/", "11-device-card")
        page.select_option("#id_reason", "courier")
        page.click("button.open-button")
        page.wait_for_selector("#device-open")
        portal.check("12-device-opened")
        assert f"{barrier.name}: открыто." in page.inner_text("body")
        [sent] = opens(type("Estate", (), {"sandbox": clean_sandbox}))
        assert sent["device_ref"] == barrier.partner_device_ref
        event = AuditEvent.objects.get(action=Action.STAFF_OPEN)
        assert (event.actor_kind, event.outcome, event.reason) == (ActorKind.STAFF, Outcome.SUCCESS, "courier")
        timeline = page.locator("#timeline").inner_text()
        assert "курьер" in timeline.lower()
        assert "manager-a" in timeline  # the staff member who opened, by name

        # export the month's audit of the building
        portal.goto("/admin/audit/auditevent/export/", "13-audit-export")
        today = moscow_now().date()
        assert page.locator("#id_since").get_attribute("type") == "date"
        assert page.locator("#id_since").input_value() == today.replace(day=1).isoformat()
        page.select_option("#id_building", str(barrier.building_id))
        assert page.locator(f"#id_building option[value='{world['b'][Building].pk}']").count() == 0
        with page.expect_download() as download:
            page.click("#audit-export-form [type=submit]")
        exported = Path(download.value.path()).read_text()
        assert "staff.open" in exported
        assert exported.count("\n") > 50

        # the lists of the day, with human labels: a car shows its owner and flat
        portal.goto("/admin/access/vehicle/", "14-vehicles")
        car_row = page.locator("#result_list tr", has_text=normalise_plate(NEW_CAR)).inner_text()
        assert resident.full_name in car_row
        assert "кв. 12" in car_row
        portal.goto("/admin/access/guestpass/", "15-guest-passes")
        assert "отозван" in page.locator("#result_list tr", has_text=normalise_plate(COURIER_PLATE)).inner_text()
        portal.goto("/admin/access/device/", "16-devices")
        portal.goto("/admin/consents/", "17-consents")
        portal.goto("/admin/access/accessgrant/", "18-grants")

        # the other company's manager sees none of it
        stranger = Portal(browser, live_server, other, other_device, None)
        for path in (f"/admin/access/resident/{resident.pk}/card/", f"/admin/access/device/{barrier.pk}/card/",
                     f"/admin/access/guestpass/{created.pk}/change/",
                     f"/admin/dashboard/{barrier.building_id}/"):
            response = stranger.page.goto(f"{live_server.url}{path}")
            assert response.status in (403, 404), path
        stranger.watch.problems.clear()  # the browser logs those refusals as console errors
        stranger.goto("/admin/access/resident/?q=%2B79160000007", "stranger-search")
        assert stranger.page.locator("#result_list").count() == 0
        assert resident.full_name not in stranger.page.inner_text("body")
        stranger.goto("/admin/audit/auditevent/export/", "stranger-export")
        assert stranger.page.locator(f"#id_building option[value='{barrier.building_id}']").count() == 0
        stranger.goto("/admin/access/device/", "stranger-devices")
        assert barrier.name not in stranger.page.inner_text("body")
        browser.close()
