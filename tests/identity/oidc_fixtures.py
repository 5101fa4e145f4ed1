"""A real OpenID Connect provider for the tests, in its own process: the Django project in
tests/oidc_provider (django-oauth-toolkit with OIDC, RS256) under gunicorn over HTTPS with the
dev PKI, on https://localhost:PORT. Our service is registered there as a confidential client
whose redirect URI is the live server's callback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.infra import free_port, stop_process, wait_for_http

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "smarthome-residents"
CLIENT_SECRET = "provider-client-secret-0123456789"


@dataclass
class RunningProvider:
    base_url: str
    ca_file: Path
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/o"

    def _control(self, path: str, payload: dict) -> dict:
        response = requests.post(f"{self.base_url}/_control/{path}", json=payload, verify=str(self.ca_file),
                                 timeout=30)
        response.raise_for_status()
        return response.json()

    def add_user(self, username: str, password: str, **claims) -> str:
        """Create (or reset) a provider user with these extra claims; returns its `sub`."""
        return self._control("users", {"username": username, "password": password, "claims": claims})["sub"]

    def fault(self, mode: str = "") -> None:
        self._control("fault", {"mode": mode})

    def backchannel_logout(self, url: str, **claims) -> dict:
        return self._control("backchannel-logout", {"url": url, **claims})


def _write_key(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))


@pytest.fixture(scope="session")
def oidc_provider(live_server, dev_pki, tmp_path_factory) -> Iterator[RunningProvider]:
    state = tmp_path_factory.mktemp("oidc-provider")
    _write_key(state / "signing.key")
    _write_key(state / "unpublished.key")
    port = free_port()
    base_url = f"https://localhost:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "DJANGO_"))},
        "DJANGO_SETTINGS_MODULE": "tests.oidc_provider.settings",
        "OIDC_PROVIDER_DIR": str(state),
        "OIDC_PROVIDER_URL": base_url,
        "OIDC_PROVIDER_CLIENT_ID": CLIENT_ID,
        "PYTHONPATH": str(REPO_ROOT),
    }
    callback = f"{live_server.url}/accounts/oidc/callback/"
    subprocess.run([sys.executable, "-m", "tests.oidc_provider.bootstrap", CLIENT_SECRET, callback],
                   cwd=REPO_ROOT, env=env, check=True)
    log = (state / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "tests.oidc_provider.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-w", "2", "--certfile", str(dev_pki["sandbox-server.pem"]), "--keyfile", str(dev_pki["sandbox-server.key"]),
         "--log-level", "warning"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_http(f"{base_url}/o/.well-known/openid-configuration", timeout_s=30, verify=str(dev_pki["ca.pem"]))
        yield RunningProvider(base_url=base_url, ca_file=dev_pki["ca.pem"])
    finally:
        stop_process(process)
        log.close()


@pytest.fixture
def provider_settings(settings, oidc_provider, live_server):
    """Our service configured for the test provider (as production would be for Keycloak)."""
    settings.IDENTITY_OIDC_ISSUER = oidc_provider.issuer
    settings.IDENTITY_OIDC_CLIENT_ID = oidc_provider.client_id
    settings.IDENTITY_OIDC_CLIENT_SECRET = oidc_provider.client_secret
    settings.IDENTITY_OIDC_SCOPES = "openid phone"
    settings.IDENTITY_OIDC_CA_FILE = str(oidc_provider.ca_file)
    settings.IDENTITY_PUBLIC_URL = live_server.url
    oidc_provider.fault("")
    yield settings
    oidc_provider.fault("")
