"""A saturated public pool leaves barrier decisions answered: both pools as real gunicorn processes
behind the real nginx, as deployed (smarthome.wsgi and smarthome.wsgi_partner, each its own socket
and workers)."""

import contextlib
import os
import secrets
import socket
import subprocess
import sys

import pytest
import requests
from django.conf import settings

from core import nginx
from tests import infra
from tests.access.decision_scene import build_scene
from tests.core.test_production_settings import ROOT
from tests.nginx_fixtures import proxy_config
from tests.partners.partner_api import make_partner_caller

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

PUBLIC_WORKERS = 2


def database_url() -> str:
    database = settings.DATABASES["default"]
    return (f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}/"
            f"{database['NAME']}")


@contextlib.contextmanager
def gunicorn_pool(pool: str, *, workers: int, env: dict, app: tuple[str, ...] = ()):
    """One pool in gunicorn (gunicorn.conf.py: sync workers; SMARTHOME_POOL picks the entry point
    unless `app` names it), on its own port; yields the port."""
    port = infra.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", *app, "-w", str(workers)], cwd=ROOT,
        env={**env, "SMARTHOME_POOL": pool, "GUNICORN_BIND": f"127.0.0.1:{port}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        infra.wait_for_http(f"http://127.0.0.1:{port}/healthz")
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()["pool"] == pool
        yield port
    finally:
        process.terminate()
        process.wait(20)


@pytest.fixture
def deployed(redis_server, nginx_prefix, dev_pki):
    """Public pool (2 workers) and partner pool (1 worker) in gunicorn, nginx before them."""
    secret = secrets.token_urlsafe(32)
    env = {
        **{k: os.environ[k] for k in ("PATH", "HOME", "LANG", "SMARTHOME_VAR_DIR", "PSEUDONYM_KEY") if k in os.environ},
        "DJANGO_SETTINGS_MODULE": "smarthome.settings", "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL, "TRUSTED_PROXY_CIDRS": "127.0.0.1/32", "PROXY_AUTH_SECRET": secret,
        "LOG_LEVEL": "WARNING",
    }
    with gunicorn_pool("public", workers=PUBLIC_WORKERS, env=env, app=("smarthome.wsgi",)) as public, \
            gunicorn_pool("partner", workers=1, env=env) as partner:
        config = proxy_config(nginx_prefix, f"127.0.0.1:{public}", dev_pki, secret,
                              partner_upstream=f"127.0.0.1:{partner}")
        process = nginx.start(config)
        try:
            infra.wait_for_http(f"https://localhost:{config.public_port}/healthz", verify=str(dev_pki["ca.pem"]))
            yield config, public
        finally:
            process.terminate()
            process.wait(10)


@contextlib.contextmanager
def occupied_workers(port: int, count: int):
    """`count` requests that never finish arriving, straight to the pool's socket: each holds one
    sync worker (as a slow view would) until gunicorn's worker timeout."""
    connections = []
    try:
        for _ in range(count):
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            connections.append(connection)
        yield
    finally:
        for connection in connections:
            connection.close()


def test_decisions_are_answered_while_every_public_worker_is_busy(deployed, dev_pki):
    config, public_port = deployed
    caller = make_partner_caller(dev_pki["partner-client.pem"], cidrs=["127.0.0.0/8"])
    scene = build_scene(caller)
    ca = str(dev_pki["ca.pem"])
    tls = {"cert": (str(dev_pki["partner-client.pem"]), str(dev_pki["partner-client.key"])), "verify": ca}
    partner = f"https://localhost:{config.partner_port}"
    decision = {"device_ref": scene.device.partner_device_ref, "request_id": "busy-public-1",
                "credential": {"type": "plate", "token": scene.plate_token}, "observed_at": "2026-01-01T00:00:00Z"}

    with occupied_workers(public_port, PUBLIC_WORKERS):
        with pytest.raises(requests.Timeout):  # the public side is saturated indeed
            requests.get(f"https://localhost:{config.public_port}/healthz", verify=ca, timeout=3)
        token = requests.post(f"{partner}/o/token/", data={"grant_type": "client_credentials"},
                              auth=(caller.client_id, caller.client_secret), timeout=30, **tls)
        assert token.status_code == 200, token.text
        answer = requests.post(f"{partner}/partner/v1/access-decisions", json=decision, timeout=30,
                               headers={"Authorization": f"Bearer {token.json()['access_token']}"}, **tls)
        assert answer.status_code == 200, answer.text
        assert answer.json()["decision"] == "allow"
        probe = requests.get(f"{partner}/healthz", timeout=30, **tls)
        assert probe.json() == {"status": "ok", "pool": "partner"}
