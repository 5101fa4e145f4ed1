"""Fixtures shared by the outbox tests: a Partner row pointing at the sandbox, client settings."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.management import call_command

from consent.encryption import encrypt_for_partner
from partners.models import Partner
from partners.services import partner_credentials_rotate


@pytest.fixture
def client_settings(settings, sandbox):
    """Our client certificate from the dev PKI; fast, deterministic client policy for tests."""
    settings.PARTNER_CLIENT_CERT_FILE = str(sandbox.pki["smarthome-client.pem"])
    settings.PARTNER_CLIENT_KEY_FILE = str(sandbox.pki["smarthome-client.key"])
    settings.PARTNER_RETRIES = 0
    settings.PARTNER_BACKOFF_BASE_S = 0.05
    settings.PARTNER_BACKOFF_MAX_S = 0.1
    settings.PARTNER_BREAKER_FAIL_MAX = 1000
    settings.PARTNER_READ_TIMEOUT_S = {**settings.PARTNER_READ_TIMEOUT_S, "face_enrol": 5, "face_delete": 5}
    return settings


@pytest.fixture
def sandbox_partner(clean_sandbox, client_settings) -> Partner:
    """A Partner row for the (reset) sandbox, with current credentials and its CA pinned."""
    partner = Partner.objects.create(
        name="Sandbox partner", slug="sandbox", api_base_url=clean_sandbox.base_url,
        server_ca_pem=clean_sandbox.pki["ca.pem"].read_text(),
    )
    partner_credentials_rotate(
        partner=partner, client_id=clean_sandbox.client_id, client_secret=clean_sandbox.client_secret
    )
    return partner


@pytest.fixture
def linked_sandbox_partner(sandbox_partner, proxy, clean_sandbox) -> Partner:
    """`sandbox_partner` linked both ways through nginx, as `make run` links it: we call the
    sandbox (client credentials, mTLS), it calls our partner listener with its client
    certificate, a token from our /o/token/ (`link_sandbox`) and signed webhooks; face photos
    are encrypted to its JWE key."""
    pki = clean_sandbox.pki
    partner_credentials_rotate(
        partner=sandbox_partner, client_id=clean_sandbox.client_id, client_secret=clean_sandbox.client_secret,
        client_cert_pem=pki["partner-client.pem"].read_text(),
        partner_public_key_pem=pki["partner-jwe.pub.pem"].read_text(), allowed_cidrs=["127.0.0.0/8", "::1/128"],
    )
    call_command("link_sandbox", control_url=clean_sandbox.control.base_url,
                 partner_url=f"https://localhost:{proxy.partner_port}", stdout=io.StringIO())
    return sandbox_partner


def face_payload(sandbox, subject: str = "sub_Zm9vYmFyYmF6") -> dict:
    """A face_put payload with a real JWE to the sandbox partner's key."""
    jwe = encrypt_for_partner(b"\xff\xd8 a face photo", public_key_pem=sandbox.pki["partner-jwe.pub.pem"].read_bytes())
    retention = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)).isoformat()
    return {"subject": subject, "jwe": jwe, "consent_ref": "consent:1", "retention_until": retention}
