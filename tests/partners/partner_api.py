"""Helpers for partner API tests: a partner with a registered certificate, an OAuth2 client bound
to it, and calls that arrive at the partner pool as nginx's mTLS listener forwards them (verified
certificate header from the trusted proxy with its proxy secret, the partner's address in
X-Forwarded-For)."""

import base64
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from django.test import Client
from oauth2_provider.models import get_application_model

from partners import services as partner_services
from partners.authentication import forget_certificate
from partners.models import Partner, PartnerApplication
from tests import factories
from tests.pools import partner_client

PARTNER_IP = "203.0.113.7"
PARTNER_CIDRS = ["203.0.113.0/24"]
OUTSIDE_IP = "198.51.100.9"
PROXY_IP = "127.0.0.1"
PROXY_SECRET = "test-proxy-secret-0123456789abcdefghij"


def cert_header(pem: bytes | str) -> str:
    return quote(pem if isinstance(pem, str) else pem.decode())


@dataclass
class PartnerCaller:
    partner: Partner
    cert_pem: str
    client_id: str
    client_secret: str
    webhook_secret: str
    client: Client = field(default_factory=partner_client)
    token: str | None = None

    def headers(self, *, cert: str | None = "own", ip: str = PARTNER_IP, token: str | None = "own") -> dict:  # noqa: S107
        headers = {"REMOTE_ADDR": PROXY_IP, "HTTP_X_PROXY_AUTH": PROXY_SECRET, "HTTP_X_FORWARDED_FOR": ip}
        pem = self.cert_pem if cert == "own" else cert
        if pem:
            headers.update(HTTP_X_CLIENT_CERT=cert_header(pem), HTTP_X_CLIENT_VERIFY="SUCCESS")
        value = self.token if token == "own" else token
        if value:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {value}"
        return headers

    def fetch_token(self, *, cert: str | None = "own", scope: str | None = None) -> dict:
        """POST /o/token/ (client credentials) as nginx forwards it; returns the JSON answer."""
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        data = {"grant_type": "client_credentials"}
        if scope:
            data["scope"] = scope
        headers = self.headers(cert=cert, token=None)
        response = self.client.post("/o/token/", data, secure=True, HTTP_AUTHORIZATION=f"Basic {basic}", **headers)
        assert response.status_code == 200, response.content
        return response.json()

    def login(self, **kwargs) -> "PartnerCaller":
        self.token = self.fetch_token(**kwargs)["access_token"]
        return self

    def post(self, path: str, body, **kwargs):
        return self.client.post(path, body, content_type="application/json", secure=True, **self.headers(**kwargs))


def make_partner_caller(cert_path: Path, *, cidrs=None) -> PartnerCaller:
    partner = factories.partner(with_credentials=False)
    cert_pem = Path(cert_path).read_text()
    issued = partner_services.partner_credentials_rotate(
        partner=partner, client_id="smarthome", client_cert_pem=cert_pem, allowed_cidrs=cidrs or PARTNER_CIDRS,
    )
    forget_certificate(issued.credentials.client_cert_fingerprint)
    Application = get_application_model()
    secret = f"partner-secret-{partner.pk}-0123456789"
    application = Application.objects.create(
        name=f"partner {partner.slug}", client_id=f"partner-{partner.slug}", client_secret=secret,
        client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    PartnerApplication.objects.create(partner=partner, application=application)
    return PartnerCaller(
        partner=partner, cert_pem=cert_pem, client_id=application.client_id, client_secret=secret,
        webhook_secret=issued.secrets["webhook_secret"],
    )


@pytest.fixture
def partner_api_settings(settings):
    settings.TRUSTED_PROXY_CIDRS = [f"{PROXY_IP}/32"]
    settings.PROXY_AUTH_SECRET = PROXY_SECRET
    return settings


@pytest.fixture
def partner_caller(dev_pki, partner_api_settings) -> PartnerCaller:
    """A partner with the dev PKI's partner-client certificate, logged in (token bound to the cert)."""
    return make_partner_caller(dev_pki["partner-client.pem"]).login()
