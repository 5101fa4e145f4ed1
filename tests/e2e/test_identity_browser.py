"""Residents in Chromium: the invitation flow (an e-mail through a real SMTP server, the link, the
password page, signing in with the e-mail) and the provider login (our /o/authorize/ -> the test
OpenID Connect provider's login page -> our consent screen -> the app's redirect)."""

import pytest

from identity.services.invitations import invitation_create
from identity.services.links import provider_link_create
from tests.e2e.test_admin_browser import CHROMIUM, CHROMIUM_ARGS
from tests.identity.helpers import REDIRECT_URI, link_in, pkce_pair

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.language("ru")]

PASSWORD = "a long resident password 2026"


@pytest.fixture
def chromium(monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_invitation_flow_in_the_browser(live_server, transactional_db, chromium, smtp_server, settings, make_resident):
    settings.IDENTITY_PUBLIC_URL = live_server.url
    resident = make_resident(email="ivanova@example.ru")
    invitation_create(resident=resident, channel="email")  # committed: the delivery runs at once
    link = link_in(smtp_server.messages[0]["body"])

    page = chromium.new_page(locale="ru-RU")  # a resident in Russia: Russian pages
    page.goto(link)
    assert page.url == f"{live_server.url}/accounts/invitation/set-password/"
    assert "Задайте пароль" in page.content()
    page.fill("#id_new_password1", "short")
    page.fill("#id_new_password2", "short")
    page.click("button[type=submit]")
    assert page.locator("#form-errors").is_visible()
    page.fill("#id_new_password1", PASSWORD)
    page.fill("#id_new_password2", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#password-saved")
    page.screenshot(path="/tmp/identity-invitation-done.png")

    page.goto(link)
    assert page.locator("#link-invalid").is_visible()  # once only

    page.goto(f"{live_server.url}/accounts/login/?next=/accounts/signed-in/")
    page.fill("#id_username", "ivanova@example.ru")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/accounts/signed-in/")


def test_provider_login_in_the_browser(live_server, transactional_db, chromium, oidc_provider, provider_settings,
                                       make_resident, mobile_app):
    resident = make_resident()
    provider_link_create(resident=resident, subject=oidc_provider.add_user("ivanova", PASSWORD, acr="gold"))
    _verifier, challenge = pkce_pair()
    authorize = (f"{live_server.url}/o/authorize/?response_type=code&client_id=mobile-app"
                 f"&redirect_uri={REDIRECT_URI}&scope=devices:read&state=st&code_challenge={challenge}"
                 "&code_challenge_method=S256")

    context = chromium.new_context(ignore_https_errors=True, locale="ru-RU")  # the provider's certificate: dev CA
    page = context.new_page()
    page.goto(authorize)
    page.wait_for_selector("#idp-submit")
    assert page.url.startswith(oidc_provider.base_url)
    page.fill("#id_username", "ivanova")
    page.fill("#id_password", PASSWORD)
    page.screenshot(path="/tmp/identity-provider-login.png")
    page.click("#idp-submit")
    page.wait_for_selector("#authorizationForm")
    assert page.url.startswith(f"{live_server.url}/o/authorize/")
    assert "Видеть ваши двери" in page.content()

    with page.expect_request(lambda request: request.url.startswith(REDIRECT_URI)) as redirect:
        page.click("button[name=allow]")
    assert "code=" in redirect.value.url
    assert "state=st" in redirect.value.url
    context.close()
