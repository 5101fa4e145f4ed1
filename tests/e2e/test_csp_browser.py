"""Every browser page sends a strict Content-Security-Policy and works under it, in Chromium.

A page that relies on an inline script or style (or anything from another origin) shows up as a
`securitypolicyviolation` event or a console error, and fails here.
"""

from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django_otp.oath import TOTP
from oauth2_provider.models import get_application_model

from access.models import Device
from tests import factories
from tests.e2e.test_admin_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD, seed_building

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIOLATION_PROBE = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(
  `${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} in ` +
  `${e.sourceFile || document.location.pathname}:${e.lineNumber}`));
"""
REDIRECT_URI = "ru.smarthome.app:/oauth2redirect"


class PageWatch:
    """Collects CSP violations and console errors of every page a browser tab shows."""

    def __init__(self, page):
        self.page = page
        self.problems: list[str] = []
        page.add_init_script(VIOLATION_PROBE)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.headers: dict[str, str] = {}
        page.on("response", self._remember_policy)

    def _console(self, message):
        # a missing favicon is the browser's guess, not the page's; its 404 is not a page error
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            self.problems.append(f"console: {message.text} ({message.location.get('url')})")

    def _remember_policy(self, response):
        if response.request.resource_type == "document":
            self.headers[response.url] = response.headers.get("content-security-policy", "")

    def check(self, label: str) -> None:
        """The page now shown loaded with a strict policy and violated nothing."""
        self.page.wait_for_load_state("load")
        violations = self.page.evaluate("window.__csp || []")
        assert violations == [], f"{label}: {violations}"
        assert self.problems == [], f"{label}: {self.problems}"
        policy = self.headers.get(self.page.url, "")
        assert "script-src 'self'" in policy, f"{label}: {policy!r}"
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        assert "default-src 'none'" in policy


@pytest.fixture
def browser_page(monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_admin_pages_keep_a_strict_policy(live_server, transactional_db, browser_page):
    building, device = seed_building()
    door = Device.objects.filter(building=building).first()
    page = browser_page.new_page(viewport={"width": 1280, "height": 900})
    watch = PageWatch(page)

    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#id_auth-username")
    watch.check("admin login")
    page.fill("#id_auth-username", "manager")
    page.fill("#id_auth-password", PASSWORD)
    page.click("button[type=submit].btn-primary")
    page.wait_for_selector("#id_token-otp_token")
    watch.check("OTP step")
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    page.fill("#id_token-otp_token", f"{totp.token():06d}")
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{live_server.url}/admin/")
    watch.check("admin index")

    page.goto(f"{live_server.url}/admin/access/device/")
    page.wait_for_selector("#result_list")
    watch.check("device changelist")
    page.click("#action-toggle")  # the actions script runs
    watch.check("changelist actions")

    page.goto(f"{live_server.url}/admin/access/device/{door.pk}/change/")
    page.wait_for_selector("#device_form")
    watch.check("change form")
    # a device's building is fixed once it exists: the add form has the autocomplete widget
    page.goto(f"{live_server.url}/admin/access/device/add/")
    page.wait_for_selector(".select2-container")
    page.click(".field-building .select2-selection")  # autocomplete: select2 builds its dropdown and asks us
    page.wait_for_selector(".select2-results__option")
    watch.check("add form with autocomplete widgets")

    page.goto(f"{live_server.url}/admin/dashboard/")
    watch.check("dashboard list")
    page.goto(f"{live_server.url}/admin/dashboard/{building.pk}/")
    page.wait_for_selector("#decisions-chart svg")
    assert page.eval_on_selector(".dash-legend i.allowed", "e => getComputedStyle(e).backgroundColor") \
        == "rgb(67, 160, 71)"  # the styles moved to a file still apply
    watch.check("building dashboard")

    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info")
    watch.check("API docs")


def test_two_factor_setup_keeps_a_strict_policy(live_server, transactional_db, browser_page):
    User.objects.create_user(username="newcomer", password=PASSWORD, is_staff=True)
    page = browser_page.new_page(viewport={"width": 1280, "height": 900})
    watch = PageWatch(page)
    page.goto(f"{live_server.url}/account/login/")
    page.fill("#id_auth-username", "newcomer")
    page.fill("#id_auth-password", PASSWORD)
    page.click("button[type=submit].btn-primary")
    page.wait_for_load_state("load")
    page.goto(f"{live_server.url}/account/two_factor/setup/")
    watch.check("two-factor setup: welcome")
    page.click("button[type=submit].btn-primary")
    qr = page.wait_for_selector("img[alt='QR Code']")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=qr)
    watch.check("two-factor setup: QR code")


def test_resident_login_and_oauth_consent_keep_a_strict_policy(live_server, transactional_db, browser_page):
    Application = get_application_model()
    Application.objects.create(
        name="Mobile app", client_id="mobile-app", client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE, redirect_uris=REDIRECT_URI,
        skip_authorization=False, algorithm="",
    )
    resident = factories.resident()
    resident.user.set_password(PASSWORD)
    resident.user.save()
    params = urlencode({"response_type": "code", "client_id": "mobile-app", "redirect_uri": REDIRECT_URI,
                        "scope": "devices:read", "state": "s1", "code_challenge": "x" * 43,
                        "code_challenge_method": "S256"})
    page = browser_page.new_page()
    watch = PageWatch(page)
    page.goto(f"{live_server.url}/o/authorize/?{params}")
    page.wait_for_selector("#id_username")
    watch.check("resident login")
    page.fill("#id_username", resident.user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button.primary")
    page.wait_for_selector("#authorizationForm")
    assert page.eval_on_selector("button.primary", "e => getComputedStyle(e).backgroundColor") == "rgb(31, 111, 235)"
    watch.check("OAuth consent page")
    redirects = []
    page.on("request", lambda request: request.url.startswith("ru.smarthome.app:") and redirects.append(request.url))
    page.on("requestfailed", lambda request: request.url.startswith("ru.smarthome.app:") and redirects.append(
        request.url))
    with page.expect_response(lambda response: "/o/authorize/" in response.url and response.status == 302):
        page.click("button.primary")
    page.wait_for_timeout(500)
    violations = page.evaluate("window.__csp || []") if page.url.startswith(live_server.url) else []
    assert violations == []  # form-action allows the app's own redirect scheme
