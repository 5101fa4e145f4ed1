"""A property manager signs in with password + TOTP in Chromium and opens the building dashboard."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from django_otp.oath import TOTP

from access.models import Device
from access.services.companies import building_create, company_create, staff_membership_create
from access.services.devices import device_create, device_set_online
from audit.actions import Action, ActorKind, Outcome
from audit.models import AuditEvent
from core.models import EncryptedTOTPDevice
from partners import services as partner_services

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOT = "/tmp/admin-dashboard.png"
LOGIN_SCREENSHOT = "/tmp/admin-login-token.png"
PASSWORD = "a long demo password 2026"


def seed_building():
    company = company_create(name="УК «Северный квартал»")
    building = building_create(
        company=company, name="ЖК Северный, корпус 2", address="Москва, ул. Полярная, 7"
    )
    partner = partner_services.partner_create(name="Sandbox", slug="sandbox", api_base_url="https://sandbox.example")
    for i, (kind, name, online) in enumerate([
        (Device.Kind.INTERCOM_DOOR, "Подъезд 1", True), (Device.Kind.INTERCOM_DOOR, "Подъезд 2", True),
        (Device.Kind.BARRIER, "Шлагбаум, въезд", True), (Device.Kind.BARRIER, "Шлагбаум, выезд", False),
    ]):
        device = device_create(building=building, kind=kind, name=name, partner=partner,
                                        partner_device_ref=f"dev-{i}")
        device_set_online(device=device, online=online)
    now = timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)

    def inside(hour: int, n: int, of: int):
        """The n-th of `of` moments inside the clock hour `hour` hours ago, none in the future
        (the dashboard counts per clock hour, so minutes before `now` could spill into another)."""
        return this_hour - timedelta(hours=hour) + (now - this_hour) * (n + 1) / (of + 1)

    for hour in range(24):
        decisions = (hour * 7) % 11 + 1
        for n in range(decisions):
            outcome = Outcome.DENIED if n % 5 == 4 else Outcome.SUCCESS
            AuditEvent.objects.create(occurred_at=inside(hour, n, decisions), actor_kind=ActorKind.PARTNER,
                                      action=Action.ACCESS_DECISION, outcome=outcome, company_id=company.pk,
                                      building_id=building.pk)
        for n in range(hour % 4):
            AuditEvent.objects.create(occurred_at=inside(hour, n, hour % 4), actor_kind=ActorKind.RESIDENT,
                                      action=Action.RESIDENT_OPEN, outcome=Outcome.SUCCESS, company_id=company.pk,
                                      building_id=building.pk)
    user = User.objects.create_user(username="manager", password=PASSWORD, is_staff=True, is_superuser=True)
    staff_membership_create(user=user, company=company)
    device = EncryptedTOTPDevice.objects.create(user=user, name="default", confirmed=True)
    return building, device


def test_login_with_totp_and_open_the_dashboard(live_server, transactional_db, monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    building, device = seed_building()
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{live_server.url}/admin/")
        assert "/account/login/" in page.url
        page.fill("#id_auth-username", "manager")
        page.fill("#id_auth-password", PASSWORD)
        page.click("button[type=submit].btn-primary")
        page.wait_for_selector("#id_token-otp_token")
        page.screenshot(path=LOGIN_SCREENSHOT)
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        page.fill("#id_token-otp_token", f"{totp.token():06d}")
        page.click("button[type=submit].btn-primary")
        page.wait_for_url(f"{live_server.url}/admin/")
        assert page.locator("#dashboard-module").is_visible()

        page.click("#dashboard-module a.section")
        page.click(f"a[href='/admin/dashboard/{building.pk}/']")
        page.wait_for_selector("#decisions-chart svg")
        assert page.locator("#decisions-chart rect.allowed").count() == 24
        assert page.locator("#decisions-chart rect.opens").count() == 18
        assert page.locator(".dash-card.online .value").inner_text() == "3"
        assert page.locator(".dash-card.offline .value").inner_text() == "1"
        page.screenshot(path=SCREENSHOT, full_page=True)
        browser.close()
