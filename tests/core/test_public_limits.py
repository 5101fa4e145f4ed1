"""The public listener's limits per client address, through the real nginx (core/nginx.py): over
the rate or the number of requests in progress, nginx answers 429 itself - a problem document with
Retry-After - and the request never reaches a worker; another address is not limited by the first
one's flood, and the partner listener not at all."""

import contextlib
import socket
import ssl
import time

import pytest
from prometheus_client import REGISTRY

from tests.core.test_client_identity_through_nginx import client_from
from tests.nginx_fixtures import proxy_for_pools

pytestmark = pytest.mark.django_db(transaction=True)

ATTACKER, NEIGHBOUR = "127.0.0.2", "127.0.0.3"


@pytest.fixture
def limited(live_server, partner_live_server, dev_pki, nginx_prefix, settings):
    """nginx with small limits: 1 request/s with a burst of 4, 2 requests in progress per address."""
    with proxy_for_pools(live_server, partner_live_server, dev_pki, nginx_prefix, settings,
                         public_rate_per_s=1, public_burst=4, public_connections=2) as config:
        yield config


def healthz_served() -> float:
    labels = {"status": "200", "view": "healthz", "method": "GET"}
    return REGISTRY.get_sample_value("django_http_responses_total_by_status_view_method_total", labels) or 0


def test_a_flood_from_one_address_is_refused_by_nginx_and_not_its_neighbour(limited, dev_pki):
    base = f"https://localhost:{limited.public_port}"
    attacker = client_from(ATTACKER, dev_pki["ca.pem"])
    served_before = healthz_served()
    answers, durations = [], []
    for _ in range(10):
        started = time.monotonic()
        answers.append(attacker.get(f"{base}/healthz", timeout=10))  # the whole body read
        durations.append(time.monotonic() - started)
    elapsed = sum(durations)
    statuses = [answer.status_code for answer in answers]
    assert statuses[:6] == [200] * 5 + [429], statuses  # the burst of 4 and the first of the rate, then refused
    assert set(statuses) == {200, 429}, statuses
    assert statuses.count(200) <= 5 + int(elapsed), statuses  # afterwards 1 per second at most
    refused = [(answer, took) for answer, took in zip(answers, durations, strict=True) if answer.status_code == 429]
    for answer, took in refused:
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.headers["Retry-After"] == "1"
        problem = answer.json()
        assert problem["type"] == "/problems/rate-limited"
        assert problem["status"] == 429
        assert problem["request_id"] == answer.headers["X-Request-ID"]
        # the refusal is sent slowly (a timer, no CPU): a flood over a connection slows down to it
        assert took >= 0.5
    # Django served exactly the requests nginx let through: the refused ones never reached it
    assert healthz_served() - served_before == statuses.count(200)
    # the API alike (at most one request refilled meanwhile passes)
    api = [attacker.get(f"{base}/api/v1/me", headers={"Authorization": "Bearer flood"}, timeout=10) for _ in range(2)]
    assert api[-1].status_code == 429, [answer.status_code for answer in api]
    assert api[-1].headers["Content-Type"] == "application/problem+json"

    neighbour = client_from(NEIGHBOUR, dev_pki["ca.pem"])
    assert [neighbour.get(f"{base}/healthz", timeout=10).status_code for _ in range(4)] == [200] * 4
    assert neighbour.get(f"{base}/api/v1/me", timeout=10).status_code == 401  # the service's own answer


def test_the_partner_listener_is_not_limited_per_address(limited, dev_pki):
    partner = client_from(ATTACKER, dev_pki["ca.pem"])
    partner.cert = (str(dev_pki["partner-client.pem"]), str(dev_pki["partner-client.key"]))
    statuses = [partner.get(f"https://localhost:{limited.partner_port}/healthz", timeout=10).status_code
                for _ in range(12)]
    assert statuses == [200] * 12


@contextlib.contextmanager
def stalled_upload(port: int, ca, source: str):
    """A POST whose body never comes: nginx holds it in progress (limit_conn counts it)."""
    context = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection(("localhost", port), timeout=10, source_address=(source, 0))
    connection = context.wrap_socket(raw, server_hostname="localhost")
    connection.sendall(b"POST /api/v1/vehicles HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 1000\r\n\r\n{")
    try:
        yield connection
    finally:
        connection.close()


def test_requests_in_progress_are_limited_per_address(limited, dev_pki):
    base = f"https://localhost:{limited.public_port}"
    ca = dev_pki["ca.pem"]
    with stalled_upload(limited.public_port, ca, ATTACKER), stalled_upload(limited.public_port, ca, ATTACKER):
        third = client_from(ATTACKER, ca).get(f"{base}/healthz", timeout=10)
        assert third.status_code == 429
        assert third.headers["Content-Type"] == "application/problem+json"
        assert third.headers["Retry-After"] == "1"
        assert client_from(NEIGHBOUR, ca).get(f"{base}/healthz", timeout=10).status_code == 200


def test_limits_are_positive_integers(tmp_path, dev_pki):
    from core import nginx
    from tests.nginx_fixtures import proxy_config

    for bad in ({"public_rate_per_s": 0}, {"public_burst": -1}, {"public_connections": "5; evil"}):
        with pytest.raises(ValueError, match="positive integers"):
            nginx.render(proxy_config(tmp_path, "127.0.0.1:1", dev_pki, "s" * 32, **bad))


def test_the_limits_come_from_the_settings(tmp_path, dev_pki):
    """`manage.py nginx_config` renders the limits of NGINX_PUBLIC_* (environment -> settings -> nginx)."""
    import subprocess

    from core import nginx
    from tests.core.test_production_settings import run_manage

    prefix = tmp_path / "nginx"
    result = run_manage(
        "nginx_config", "--prefix", str(prefix), "--public-upstream", "127.0.0.1:8000",
        "--partner-upstream", "unix:/run/smarthome/partner.sock", "--server-cert", str(dev_pki["smarthome-server.pem"]),
        "--server-key", str(dev_pki["smarthome-server.key"]), "--partner-ca", str(dev_pki["ca.pem"]),
        "--public-port", "19443", "--partner-port", "19444", "--listen-host", "127.0.0.1",
        env={"PROXY_AUTH_SECRET": "s" * 40, "NGINX_PUBLIC_RATE_PER_S": "7", "NGINX_PUBLIC_BURST": "9",
             "NGINX_PUBLIC_CONNECTIONS": "3"},
    )
    assert result.returncode == 0, result.stderr
    conf = prefix / "nginx.conf"
    assert result.stdout.strip() == str(conf)
    text = conf.read_text()
    assert "rate=7r/s;" in text
    assert "limit_req zone=public_rate burst=9 nodelay;" in text
    assert "limit_conn public_connections 3;" in text
    assert "upstream smarthome_public { server 127.0.0.1:8000;" in text
    assert "upstream smarthome_partner { server unix:/run/smarthome/partner.sock;" in text
    assert conf.stat().st_mode & 0o777 == 0o600
    checked = subprocess.run([nginx.NGINX, "-t", "-q", "-p", str(prefix), "-c", str(conf)], capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stderr
    refused = run_manage("nginx_config", "--prefix", str(tmp_path / "other"), "--public-upstream", "a:1",
                         "--partner-upstream", "b:2", "--server-cert", "c", "--server-key", "d", "--partner-ca", "e",
                         env={"PROXY_AUTH_SECRET": ""})
    assert refused.returncode != 0
    assert "PROXY_AUTH_SECRET is not set" in refused.stderr


@pytest.mark.parametrize(("listeners", "present", "absent"), [
    (("public",), "limit_req zone=public_rate", "ssl_verify_client on"),
    (("partner",), "ssl_verify_client on", "limit_req"),
])
def test_an_nginx_per_listener(tmp_path, dev_pki, listeners, present, absent):
    import subprocess

    from core import nginx
    from tests.nginx_fixtures import proxy_config

    config = proxy_config(tmp_path, "127.0.0.1:1", dev_pki, "s" * 32, partner_upstream="127.0.0.1:2",
                          listeners=listeners)
    conf = nginx.write_config(config)
    text = conf.read_text()
    assert present in text
    assert absent not in text
    checked = subprocess.run([nginx.NGINX, "-t", "-q", "-p", str(tmp_path), "-c", str(conf)], capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stderr
    with pytest.raises(ValueError, match="listeners"):
        nginx.render(proxy_config(tmp_path, "127.0.0.1:1", dev_pki, "s" * 32, listeners=("everything",)))
