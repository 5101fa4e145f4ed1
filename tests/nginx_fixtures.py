"""A real nginx in front of the live servers: the public TLS listener before the public pool
(pytest-django's live_server), the partner mTLS listener before the partner pool (tests/pools.py)."""

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from core import nginx
from tests import infra


def proxy_config(prefix, upstream: str, dev_pki, proxy_secret: str, *, partner_upstream: str | None = None,
                 **limits) -> nginx.ProxyConfig:
    """Both listeners on free ports; the partner listener goes to `partner_upstream` (default: `upstream`,
    for a test that has one backend only)."""
    public_port, partner_port = infra.free_ports(2)
    return nginx.ProxyConfig(
        prefix=prefix, upstream=upstream, partner_upstream=partner_upstream or upstream, public_port=public_port,
        partner_port=partner_port, server_cert=dev_pki["smarthome-server.pem"],
        server_key=dev_pki["smarthome-server.key"], partner_ca=dev_pki["ca.pem"], proxy_secret=proxy_secret,
        **limits,
    )


def get_once_up(url: str, *, ready=lambda response: True, timeout_s: float = 20, **kwargs) -> requests.Response:
    """GET `url` until nginx listens and `ready(response)` holds (nginx, or what is behind it, starting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = requests.get(url, timeout=5, **kwargs)
            if ready(response):
                return response
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer as expected within {timeout_s} s")
        time.sleep(0.1)


@pytest.fixture
def nginx_prefix():
    """A prefix nginx's workers can reach, as in a deployment: run as root, they are `nobody`, and
    pytest's own temp directories are closed to others (a request body could not be spooled)."""
    prefix = Path(tempfile.mkdtemp(prefix="smarthome-nginx-"))
    os.chmod(prefix, 0o755)  # noqa: S103 - nginx's workers must reach their temp paths in it
    yield prefix
    shutil.rmtree(prefix, ignore_errors=True)


@contextlib.contextmanager
def proxy_for_pools(live_server, partner_live_server, dev_pki, prefix, settings, **limits):
    """nginx terminating TLS for both live pools; the service believes its headers (proxy secret shared)."""
    settings.TRUSTED_PROXY_CIDRS = ["127.0.0.1/32"]
    settings.PROXY_AUTH_SECRET = secrets.token_urlsafe(32)
    upstream = urlparse(live_server.url)
    config = proxy_config(prefix, f"127.0.0.1:{upstream.port}", dev_pki, settings.PROXY_AUTH_SECRET,
                          partner_upstream=f"127.0.0.1:{partner_live_server.port}", **limits)
    process = nginx.start(config)
    try:
        infra.wait_for_http(f"https://localhost:{config.public_port}/healthz", verify=str(dev_pki["ca.pem"]))
        yield config
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def proxy(live_server, partner_live_server, dev_pki, nginx_prefix, settings):
    """nginx terminating TLS for both pools, with the default limits of the public listener."""
    with proxy_for_pools(live_server, partner_live_server, dev_pki, nginx_prefix, settings) as config:
        yield config
