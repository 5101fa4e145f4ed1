"""Fixtures (a pytest plugin, see tests/conftest.py) and helpers of the identity tests: residents,
the mobile app, a real SMTP server, and the browser steps of the OAuth and provider flows."""

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
import requests
from oauth2_provider.models import get_application_model

from access.services.companies import company_create
from access.services.residents import resident_create

REDIRECT_URI = "ru.smarthome.app:/oauth2redirect"


@pytest.fixture
def company():
    return company_create(name="УК «Тестовая»")


@pytest.fixture
def make_resident(company):
    def make(phone="+7 916 000-00-01", email="resident@example.ru", **kwargs):
        return resident_create(
            company=company, full_name="Иванов Иван Иванович", phone=phone, email=email, **kwargs
        )
    return make


@pytest.fixture
def mobile_app():
    application = get_application_model()
    return application.objects.create(
        name="Mobile app", client_id="mobile-app", client_type=application.CLIENT_PUBLIC,
        authorization_grant_type=application.GRANT_AUTHORIZATION_CODE, redirect_uris=REDIRECT_URI,
        skip_authorization=False, algorithm="",
    )


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def follow(session: requests.Session, response: requests.Response, limit: int = 15) -> requests.Response:
    """Follow redirects by hand (across our service and the provider), stopping at the app's
    own scheme, which no HTTP client can open."""
    for _ in range(limit):
        if response.status_code not in (301, 302, 303, 307, 308):
            return response
        location = urljoin(response.url, response.headers["Location"])
        if not location.startswith(("http://", "https://")):
            return response
        response = session.get(location, allow_redirects=False, timeout=30)
    raise AssertionError("too many redirects")


def form_fields(html: str) -> dict:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def start_authorize(base_url: str, session: requests.Session, *, scope: str = "devices:read"):
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code", "client_id": "mobile-app", "redirect_uri": REDIRECT_URI, "scope": scope,
        "state": "app-state", "code_challenge": challenge, "code_challenge_method": "S256",
    }
    response = session.get(f"{base_url}/o/authorize/", params=params, allow_redirects=False, timeout=30)
    return verifier, follow(session, response)


def provider_sign_in(session: requests.Session, login_page: requests.Response, username: str, password: str):
    """Fill the provider's login form; returns where the redirects end (our page or the app)."""
    assert "Corporate identity provider" in login_page.text, login_page.text[:300]
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
    next_url = re.search(r'name="next" value="([^"]*)"', login_page.text).group(1).replace("&amp;", "&")
    response = session.post(
        login_page.url, data={"username": username, "password": password, "csrfmiddlewaretoken": csrf,
                              "next": next_url},
        headers={"Referer": login_page.url}, allow_redirects=False, timeout=30,
    )
    return follow(session, response)


def confirm_consent(base_url: str, session: requests.Session, consent_page: requests.Response) -> dict:
    form = form_fields(consent_page.text)
    form["allow"] = "Authorize"
    response = session.post(f"{base_url}/o/authorize/", data=form, headers={"Referer": consent_page.url},
                            allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text[:500]
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


def exchange_code(base_url: str, code: str, verifier: str) -> requests.Response:
    return requests.post(f"{base_url}/o/token/", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
        "client_id": "mobile-app", "code_verifier": verifier,
    }, timeout=30)


class _Inbox:
    def __init__(self):
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append({"to": envelope.rcpt_tos, "subject": str(message["subject"]),
                              "body": message.get_body(("plain",)).get_content()})
        return "250 OK"


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server (aiosmtpd) on a free loopback port; Django's SMTP backend sends to it."""
    from aiosmtpd.controller import Controller

    from tests.infra import free_port

    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    try:
        yield inbox
    finally:
        controller.stop()


def link_in(text: str) -> str:
    match = re.search(r"https?://\S+/accounts/invitation/[A-Za-z0-9_-]+/", text)
    assert match, text
    return match.group(0)
