"""The hop nginx -> service is authenticated: forwarded identity headers count only with the proxy secret.

A local process that holds a stolen partner token and the partner's public certificate (no key)
can talk to the service's port over loopback TCP - from the very address nginx uses. It must
not get decisions by writing X-Client-Cert itself.
"""

import http.client
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.test import RequestFactory
from oauth2_provider.models import get_application_model

from access.models import VehiclePlateToken
from audit.models import AuditEvent
from core import nginx
from core.http.client_ip import client_ip
from core.http.proxy import TrustedProxyMiddleware, via_trusted_proxy
from partners import services as partner_services
from partners.models import PartnerApplication
from tests import factories
from tests.core.test_production_settings import PRODUCTION_ENV, run_manage
from tests.nginx_fixtures import get_once_up, proxy_config

SECRET = "proxy-secret-for-the-hop-0123456789abcdef"
CLIENT_SECRET = "hop-partner-secret-0123456789"


def through_middleware(**meta):
    """The request as the view sees it after TrustedProxyMiddleware."""
    request = RequestFactory().get("/", **meta)
    seen = {}

    def view(req):
        seen["request"] = req
        return None

    TrustedProxyMiddleware(view)(request)
    return seen["request"]


FORWARDED = {
    "HTTP_X_FORWARDED_FOR": "203.0.113.5", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_CLIENT_CERT": "pem",
    "HTTP_X_CLIENT_VERIFY": "SUCCESS", "HTTP_FORWARDED": "for=198.51.100.1", "HTTP_X_REAL_IP": "198.51.100.2",
}


@pytest.fixture
def hop_settings(settings):
    settings.TRUSTED_PROXY_CIDRS = ["127.0.0.1/32"]
    settings.PROXY_AUTH_SECRET = SECRET
    return settings


@pytest.mark.parametrize(("peer", "presented", "trusted"), [
    ("127.0.0.1", SECRET, True),
    ("", SECRET, True),  # a unix socket (gunicorn leaves REMOTE_ADDR empty): its file mode decides who connects
    ("127.0.0.1", None, False),  # loopback alone is no proof: any local process connects from there
    ("127.0.0.1", SECRET[:-1] + "x", False),
    ("127.0.0.1", SECRET + "x", False),
    ("198.51.100.7", SECRET, False),  # the secret from a peer that is not the proxy
])
def test_forwarded_headers_need_a_proxy_peer_and_the_secret(hop_settings, peer, presented, trusted):
    meta = {**FORWARDED, "REMOTE_ADDR": peer}
    if presented is not None:
        meta["HTTP_X_PROXY_AUTH"] = presented
    request = through_middleware(**meta)
    assert via_trusted_proxy(request) is trusted
    assert "HTTP_X_PROXY_AUTH" not in request.META  # never handed to views, logs or error reports
    if trusted:
        assert client_ip(request) == "203.0.113.5"
        assert request.is_secure()
        assert request.META["HTTP_X_CLIENT_CERT"] == "pem"
    else:
        assert client_ip(request) == peer
        assert not request.is_secure()
        assert not any(name in request.META for name in FORWARDED)


def test_without_a_configured_secret_nothing_forwarded_is_believed(settings):
    settings.TRUSTED_PROXY_CIDRS = ["127.0.0.1/32"]
    settings.PROXY_AUTH_SECRET = ""
    request = through_middleware(REMOTE_ADDR="127.0.0.1", HTTP_X_PROXY_AUTH="", **FORWARDED)
    assert not via_trusted_proxy(request)
    assert client_ip(request) == "127.0.0.1"


def test_a_request_that_skipped_the_middleware_believes_nothing(hop_settings):
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_PROXY_AUTH=SECRET, **FORWARDED)
    assert client_ip(request) == "127.0.0.1"


def test_production_refuses_proxies_without_a_secret():
    result = run_manage("check", env={**PRODUCTION_ENV, "TRUSTED_PROXY_CIDRS": "127.0.0.1/32"})
    assert result.returncode != 0
    assert "PROXY_AUTH_SECRET" in result.stderr
    short = run_manage("check", env={**PRODUCTION_ENV, "TRUSTED_PROXY_CIDRS": "127.0.0.1/32",
                                     "PROXY_AUTH_SECRET": "short"})
    assert short.returncode != 0
    assert "PROXY_AUTH_SECRET" in short.stderr
    ok = run_manage("check", env={**PRODUCTION_ENV, "TRUSTED_PROXY_CIDRS": "127.0.0.1/32",
                                  "PROXY_AUTH_SECRET": SECRET})
    assert ok.returncode == 0, ok.stderr


def test_the_nginx_configuration_holding_the_secret_is_private(tmp_path, dev_pki):
    config = proxy_config(tmp_path / "nginx", "127.0.0.1:1", dev_pki, SECRET)
    conf = nginx.write_config(config)
    assert conf.stat().st_mode & 0o777 == 0o600
    assert f'X-Proxy-Auth "{SECRET}"' in conf.read_text()
    conf.chmod(0o644)
    nginx.write_config(config)  # rewriting an existing, too open file closes it again
    assert conf.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="proxy secret"):
        nginx.render(proxy_config(tmp_path / "other", "127.0.0.1:1", dev_pki, 'short"; evil'))


@pytest.mark.django_db(transaction=True)
def test_a_forged_certificate_header_over_loopback_gets_no_decision(proxy, dev_pki, partner_live_server):
    """Through nginx the partner gets `allow`; a local process replaying its token with a forged
    X-Client-Cert (public certificate, no key) from 127.0.0.1 gets 401, and no allowed decision is audited."""
    partner = factories.partner(with_credentials=False)
    cert_pem = Path(dev_pki["partner-client.pem"]).read_text()
    partner_services.partner_credentials_rotate(
        partner=partner, client_id="smarthome", client_cert_pem=cert_pem, allowed_cidrs=["127.0.0.0/8"],
    )
    Application = get_application_model()
    app = Application.objects.create(
        name="hop", client_id="hop-partner", client_secret=CLIENT_SECRET,
        client_type=Application.CLIENT_CONFIDENTIAL, authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    PartnerApplication.objects.create(partner=partner, application=app)
    building = factories.building()
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    factories.device(building_=building, partner_=partner, kind="barrier", partner_device_ref="gate-hop")
    resident = factories.resident(unit_=factories.unit(building_=building))
    factories.grant(resident_=resident, building_=building)
    plate = VehiclePlateToken.objects.get(vehicle=factories.vehicle(resident_=resident), partner=partner).token

    partner_tls = {"cert": (str(dev_pki["partner-client.pem"]), str(dev_pki["partner-client.key"])),
                   "verify": str(dev_pki["ca.pem"]), "timeout": 10}
    base = f"https://localhost:{proxy.partner_port}"
    token = requests.post(f"{base}/o/token/", data={"grant_type": "client_credentials"},
                          auth=("hop-partner", CLIENT_SECRET), **partner_tls).json()["access_token"]
    decision = {"device_ref": "gate-hop", "credential": {"type": "plate", "token": plate},
                "request_id": "hop-1", "observed_at": "2026-01-01T00:00:00Z"}
    through_nginx = requests.post(f"{base}/partner/v1/access-decisions", json=decision,
                                  headers={"Authorization": f"Bearer {token}"}, **partner_tls)
    assert through_nginx.status_code == 200, through_nginx.text
    assert through_nginx.json()["decision"] == "allow"
    allowed = AuditEvent.objects.filter(action="access.decision", outcome="success").count()
    assert allowed == 1

    port = partner_live_server.port  # the partner pool's own port
    forged = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
              "X-Client-Cert": quote(cert_pem), "X-Client-Verify": "SUCCESS", "X-Forwarded-For": "127.0.0.1",
              "X-Forwarded-Proto": "https"}
    for extra in ({}, {"X-Proxy-Auth": "guessed-" + "0" * 32}):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # the proxy's own address
        connection.request("POST", "/partner/v1/access-decisions",
                           body=json.dumps({**decision, "request_id": "hop-forged"}), headers={**forged, **extra})
        response = connection.getresponse()
        problem = json.loads(response.read())
        connection.close()
        assert response.status == 401, problem
        assert response.getheader("Content-Type") == "application/problem+json"
    assert AuditEvent.objects.filter(action="access.decision", outcome="success").count() == allowed
    assert not AuditEvent.objects.filter(request_id="hop-forged", outcome="success").exists()


ECHO_APP = '''
import json


def app(environ, start_response):
    body = json.dumps({
        "remote_addr": environ.get("REMOTE_ADDR"),
        "proxy_auth": environ.get("HTTP_X_PROXY_AUTH"),
        "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR"),
        "scheme": environ.get("wsgi.url_scheme"),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
'''


def test_nginx_reaches_gunicorn_over_a_unix_socket_as_an_empty_remote_addr(nginx_prefix, dev_pki):
    """The unix-socket deployment: gunicorn reports the peer as an empty REMOTE_ADDR (which the
    proxy rule accepts as a proxy peer), and nginx's secret arrives with the request."""
    (nginx_prefix / "echo.py").write_text(ECHO_APP)
    sock = nginx_prefix / "web.sock"
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--chdir", str(nginx_prefix), "-b", f"unix:{sock}", "-w", "1", "echo:app"],
        cwd=nginx_prefix, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    config = proxy_config(nginx_prefix / "nginx", f"unix:{sock}", dev_pki, SECRET)
    proxy = nginx.start(config)
    try:
        seen = get_once_up(f"https://localhost:{config.public_port}/api/v1/echo",
                           ready=lambda response: response.status_code == 200, verify=str(dev_pki["ca.pem"]),
                           headers={"X-Proxy-Auth": "forged", "X-Forwarded-For": "10.9.9.9"})
        assert seen.json() == {"remote_addr": "", "proxy_auth": SECRET, "forwarded_for": "127.0.0.1",
                               "scheme": "https"}
    finally:
        proxy.terminate()
        proxy.wait(10)
        gunicorn.terminate()
        gunicorn.wait(10)
