"""What operators watch about partners: /readyz's partner block against the real sandbox (up, down,
hanging, breaker open), certificate expiry gauges and the dead-letter gauge on /metrics."""

from __future__ import annotations

import datetime
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from core.observability.scrape import scrape_registry
from partners.client.breaker import breaker_for
from partners.client.connection import partner_connection_for
from partners.models import OutboxMessage
from partners.services import partner_credentials_rotate
from tests.partners import outbox_fixtures

client_settings = outbox_fixtures.client_settings
sandbox_partner = outbox_fixtures.sandbox_partner
pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NOT_AFTER = "smarthome_certificate_not_after_timestamp_seconds"


@pytest.fixture(autouse=True)
def patient_probe(settings):
    """A loaded test machine may take a while for a TLS handshake; the hang test sets its own."""
    settings.READYZ_PARTNER_TIMEOUT_S = 2.0


def readyz(client):
    started = time.monotonic()
    response = client.get("/readyz")
    return response, time.monotonic() - started


def test_readyz_names_the_partner_reachable_and_stays_ready_when_it_is_down(client, sandbox_partner, clean_sandbox):
    up, _ = readyz(client)
    assert up.status_code == 200, up.content
    assert up.json()["partner"] == {"sandbox": "reachable"}

    clean_sandbox.control.down()
    down, took = readyz(client)
    assert down.status_code == 200  # information, not readiness: decisions never need the partner
    assert down.json()["failed"] == []
    assert down.json()["partner"] == {"sandbox": "unreachable"}
    assert took < 3

    clean_sandbox.control.up()
    assert readyz(client)[0].json()["partner"] == {"sandbox": "reachable"}


def test_a_hanging_partner_is_unreachable_within_the_readyz_timeout(client, sandbox_partner, clean_sandbox, settings):
    settings.READYZ_PARTNER_TIMEOUT_S = 0.3
    clean_sandbox.control.set_faults(hang=True)
    try:
        response, took = readyz(client)
    finally:
        clean_sandbox.control.clear_faults()
    assert response.status_code == 200
    assert response.json()["partner"] == {"sandbox": "unreachable"}
    assert took < 2


def test_a_partner_answering_5xx_is_unreachable_and_429_is_reachable(client, sandbox_partner, clean_sandbox):
    clean_sandbox.control.set_faults(error_rate=1.0, error_status=503)
    assert readyz(client)[0].json()["partner"] == {"sandbox": "unreachable"}
    clean_sandbox.control.set_faults(error_rate=0.0, rate_limit=True)
    assert readyz(client)[0].json()["partner"] == {"sandbox": "reachable"}  # it answers: it is there


def test_readyz_says_breaker_open_without_probing(client, sandbox_partner, clean_sandbox):
    breaker_for(partner_connection_for(sandbox_partner)).open()
    calls_before = len(clean_sandbox.control.log()["entries"])
    response = readyz(client)[0]
    assert response.status_code == 200
    assert response.json()["partner"] == {"sandbox": "breaker_open"}
    assert len(clean_sandbox.control.log()["entries"]) == calls_before


def test_suspended_partners_are_not_listed(client, sandbox_partner):
    sandbox_partner.suspended_at = datetime.datetime.now(datetime.UTC)
    sandbox_partner.save()
    assert readyz(client)[0].json()["partner"] == {}


def make_cert(days: float, name: str = "test") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256()))
    return cert.public_bytes(Encoding.PEM)


def not_after_of(pem: bytes) -> float:
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc.timestamp()


def test_certificate_expiry_of_every_certificate_partners_depend_on(sandbox_partner, clean_sandbox, settings, tmp_path):
    pki = clean_sandbox.pki
    chain = tmp_path / "server-chain.pem"
    leaf, intermediate = make_cert(90), make_cert(20)  # the chain expires with its first certificate
    chain.write_bytes(leaf + intermediate)
    settings.TLS_SERVER_CERT_FILE = str(chain)
    old_ca, new_ca = make_cert(10), make_cert(400)  # a CA bundle lives as long as its last CA
    sandbox_partner.server_ca_pem = (old_ca + new_ca).decode()
    sandbox_partner.save()
    partner_credentials_rotate(partner=sandbox_partner, client_id=clean_sandbox.client_id,
                               client_secret=clean_sandbox.client_secret,
                               client_cert_pem=pki["partner-client.pem"].read_text())

    registry = scrape_registry()
    value = lambda certificate, partner="": registry.get_sample_value(  # noqa: E731
        NOT_AFTER, {"certificate": certificate, "partner": partner})
    assert value("server") == not_after_of(intermediate)
    assert value("partner_client") == not_after_of(pki["smarthome-client.pem"].read_bytes())
    assert value("partner_server_ca", "sandbox") == not_after_of(new_ca)
    assert value("partner_pinned_client", "sandbox") == not_after_of(pki["partner-client.pem"].read_bytes())


def test_an_unreadable_certificate_reports_1970(sandbox_partner, settings, tmp_path):
    settings.TLS_SERVER_CERT_FILE = str(tmp_path / "missing.pem")
    settings.PARTNER_CLIENT_CERT_FILE = str(tmp_path / "garbage.pem")
    (tmp_path / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    registry = scrape_registry()
    assert registry.get_sample_value(NOT_AFTER, {"certificate": "server", "partner": ""}) == 0
    assert registry.get_sample_value(NOT_AFTER, {"certificate": "partner_client", "partner": ""}) == 0


def test_dead_letters_count_retryable_ones_only(sandbox_partner, client):
    def dead(operation, key, last_error):
        OutboxMessage.objects.create(partner=sandbox_partner, operation=operation, ordering_key=key,
                                     idempotency_key=f"idem-{key}", payload={"subject": key},
                                     status=OutboxMessage.Status.DEAD, last_error=last_error,
                                     dead_lettered_at=datetime.datetime.now(datetime.UTC))

    dead("face_delete", "sub_a", "http_500")
    dead("face_put", "sub_b", "consent_revoked")  # cancelled by a revocation: nothing to retry
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "\nsmarthome_outbox_dead_letters 1.0\n" in body
