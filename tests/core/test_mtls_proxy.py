"""mTLS through a real nginx: the service sees the verified partner certificate, and only from the proxy."""

import http.client
import json
from pathlib import Path

import pytest
import requests

from partners.devcerts import x5t_s256

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.mtls_urls")]


@pytest.fixture(autouse=True)
def _partner_pool_whoami(request):
    """The partner pool serves the whoami view too (when a test runs the partner pool live)."""
    if "partner_live_server" in request.fixturenames:
        request.getfixturevalue("partner_live_server").handler.urlconf = "tests.core.mtls_partner_urls"


def partner_url(proxy, path="/partner/v1/_test/whoami"):
    return f"https://localhost:{proxy.partner_port}{path}"


def test_partner_certificate_reaches_the_service(proxy, dev_pki):
    response = requests.get(
        partner_url(proxy), cert=(str(dev_pki["partner-client.pem"]), str(dev_pki["partner-client.key"])),
        verify=str(dev_pki["ca.pem"]), timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["x5t_s256"] == x5t_s256(Path(dev_pki["partner-client.pem"]).read_bytes())
    assert response.json()["client_ip"] == "127.0.0.1"


def test_partner_port_refuses_callers_without_a_certificate(proxy, dev_pki):
    response = requests.get(partner_url(proxy), verify=str(dev_pki["ca.pem"]), timeout=10)
    assert response.status_code == 400  # nginx: "No required SSL certificate was sent"
    assert "x5t_s256" not in response.text


def test_certificate_from_another_ca_is_refused(proxy, dev_pki):
    response = requests.get(
        partner_url(proxy), cert=(str(dev_pki["rogue-client.pem"]), str(dev_pki["rogue-client.key"])),
        verify=str(dev_pki["ca.pem"]), timeout=10,
    )
    assert response.status_code == 400
    assert "x5t_s256" not in response.text


def test_public_port_ignores_a_forged_certificate_header(proxy, dev_pki):
    forged = requests.utils.quote(Path(dev_pki["partner-client.pem"]).read_text())
    response = requests.get(
        f"https://localhost:{proxy.public_port}/api/v1/_test/whoami",
        headers={"X-Client-Cert": forged, "X-Client-Verify": "SUCCESS"},
        verify=str(dev_pki["ca.pem"]), timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["x5t_s256"] is None
    assert requests.get(f"https://localhost:{proxy.public_port}/partner/v1/_test/whoami",
                        verify=str(dev_pki["ca.pem"]), timeout=10).status_code == 404


def test_headers_from_an_untrusted_peer_are_dropped(partner_live_server, dev_pki, settings):
    settings.TRUSTED_PROXY_CIDRS = ["127.0.0.1/32"]
    forged = requests.utils.quote(Path(dev_pki["partner-client.pem"]).read_text())
    port = partner_live_server.port
    # 127.0.0.2 is loopback too, but not the trusted proxy address
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0))
    connection.request("GET", "/partner/v1/_test/whoami",
                       headers={"X-Client-Cert": forged, "X-Client-Verify": "SUCCESS", "X-Forwarded-For": "10.1.1.1"})
    body = json.loads(connection.getresponse().read())
    assert body["x5t_s256"] is None
    assert body["client_ip"] == "127.0.0.2"


def test_a_forwarded_certificate_is_parsed_once_per_header_value(dev_pki):
    from urllib.parse import quote

    from core.http.mtls import parse_forwarded_certificate

    partner = quote(Path(dev_pki["partner-client.pem"]).read_text())
    first = parse_forwarded_certificate(partner)
    assert parse_forwarded_certificate(partner) is first  # kept, not parsed again
    assert first.x5t_s256 == x5t_s256(Path(dev_pki["partner-client.pem"]).read_bytes())
    other = parse_forwarded_certificate(quote(Path(dev_pki["rogue-client.pem"]).read_text()))
    assert other.fingerprint_sha256 != first.fingerprint_sha256
    assert parse_forwarded_certificate(quote("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----")) is None
