"""mTLS through a real nginx: the service sees the verified partner certificate, and only from the proxy."""

import http.client
import json
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from partners.devcerts import generate_dev_pki, x5t_s256
from smarthome import nginx
from tests import infra

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.smarthome.mtls_urls")]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return generate_dev_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def proxy(live_server, pki, tmp_path, settings):
    settings.TRUSTED_PROXY_CIDRS = ["127.0.0.1/32"]
    upstream = urlparse(live_server.url)
    config = nginx.ProxyConfig(
        prefix=tmp_path / "nginx",
        upstream=f"127.0.0.1:{upstream.port}",
        public_port=infra.free_port(),
        partner_port=infra.free_port(),
        server_cert=pki["smarthome-server.pem"],
        server_key=pki["smarthome-server.key"],
        partner_ca=pki["ca.pem"],
    )
    process = nginx.start(config)
    infra.wait_for_http(f"https://localhost:{config.public_port}/healthz", verify=str(pki["ca.pem"]))
    yield config
    process.terminate()
    process.wait(10)


def partner_url(proxy, path="/partner/v1/_test/whoami"):
    return f"https://localhost:{proxy.partner_port}{path}"


def test_partner_certificate_reaches_the_service(proxy, pki):
    response = requests.get(
        partner_url(proxy), cert=(str(pki["partner-client.pem"]), str(pki["partner-client.key"])),
        verify=str(pki["ca.pem"]), timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["x5t_s256"] == x5t_s256(Path(pki["partner-client.pem"]).read_bytes())
    assert response.json()["client_ip"] == "127.0.0.1"


def test_partner_port_refuses_callers_without_a_certificate(proxy, pki):
    response = requests.get(partner_url(proxy), verify=str(pki["ca.pem"]), timeout=10)
    assert response.status_code == 400  # nginx: "No required SSL certificate was sent"
    assert "x5t_s256" not in response.text


def test_certificate_from_another_ca_is_refused(proxy, pki):
    response = requests.get(
        partner_url(proxy), cert=(str(pki["rogue-client.pem"]), str(pki["rogue-client.key"])),
        verify=str(pki["ca.pem"]), timeout=10,
    )
    assert response.status_code == 400
    assert "x5t_s256" not in response.text


def test_public_port_ignores_a_forged_certificate_header(proxy, pki):
    forged = requests.utils.quote(Path(pki["partner-client.pem"]).read_text())
    response = requests.get(
        f"https://localhost:{proxy.public_port}/api/v1/_test/whoami",
        headers={"X-Client-Cert": forged, "X-Client-Verify": "SUCCESS"},
        verify=str(pki["ca.pem"]), timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["x5t_s256"] is None
    assert requests.get(f"https://localhost:{proxy.public_port}/partner/v1/_test/whoami",
                        verify=str(pki["ca.pem"]), timeout=10).status_code == 404


def test_headers_from_an_untrusted_peer_are_dropped(live_server, pki, settings):
    settings.TRUSTED_PROXY_CIDRS = ["127.0.0.1/32"]
    forged = requests.utils.quote(Path(pki["partner-client.pem"]).read_text())
    port = urlparse(live_server.url).port
    # 127.0.0.2 is loopback too, but not the trusted proxy address
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0))
    connection.request("GET", "/partner/v1/_test/whoami",
                       headers={"X-Client-Cert": forged, "X-Client-Verify": "SUCCESS", "X-Forwarded-For": "10.1.1.1"})
    body = json.loads(connection.getresponse().read())
    assert body["x5t_s256"] is None
    assert body["client_ip"] == "127.0.0.2"
