"""Pytest fixtures for the sandbox partner: the dev PKI and a running sandbox process.

Use them from a conftest (``from tests.partners.sandbox_fixtures import clean_sandbox, dev_pki,
sandbox``) or with ``pytest_plugins = ["tests.partners.sandbox_fixtures"]``.

- ``dev_pki`` (session): ``{file name: Path}`` of a PKI generated into a temp directory.
- ``sandbox`` (session): a `RunningSandbox` - ``python -m partners.sandbox`` on free ports.
- ``clean_sandbox`` (function): the same sandbox, reset (state, log, faults) before and after.
- ``sandbox_factory``: ``with sandbox_factory(clients=..., token_ttl_s=...) as other:`` runs
  another sandbox (see `launch_sandbox`), e.g. with a short token lifetime or other clients.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings

from partners.devcerts import generate_dev_pki
from partners.sandbox.control import SandboxControl
from partners.sandbox.oauth import DEFAULT_CLIENTS

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 20
_STARTED = re.compile(r"listening on (https://\S+) \(control (http://[^)\s]+)\)")


@dataclass
class RunningSandbox:
    base_url: str
    control: SandboxControl
    pki: dict[str, Path]
    client_id: str
    client_secret: str
    log_path: Path

    def session(self, cert: str = "smarthome-client") -> requests.Session:
        """A session that trusts only the dev CA and presents client certificate `cert`
        (a dev PKI name: "smarthome-client", "partner-client", "rogue-client")."""
        session = requests.Session()
        session.trust_env = False  # no proxies from the environment: the sandbox is local
        session.verify = str(self.pki["ca.pem"])
        session.cert = (str(self.pki[f"{cert}.pem"]), str(self.pki[f"{cert}.key"]))
        return session

    def fetch_token(self, session: requests.Session) -> str:
        """An access token from ``/oauth/token``, bound to the certificate `session` presents."""
        response = session.post(
            f"{self.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(self.client_id, self.client_secret),
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["access_token"]

    def authorized_session(self, cert: str = "smarthome-client") -> requests.Session:
        """`session(cert)` that already carries a bearer token fetched over it."""
        session = self.session(cert)
        session.headers["Authorization"] = f"Bearer {self.fetch_token(session)}"
        return session


@contextmanager
def launch_sandbox(
    pki: dict[str, Path],
    log_dir: Path,
    *,
    clients: dict[str, str] | None = None,
    token_ttl_s: int | None = None,
    face_photo_max_bytes: int | None = None,
) -> Iterator[RunningSandbox]:
    """Run ``python -m partners.sandbox`` on free ports until the block ends.

    `clients` (client id -> secret) is written to a ``--clients-file``; the first one is the
    `RunningSandbox`'s client. Without it the sandbox's default client is used.
    `face_photo_max_bytes` defaults to the service's FACE_PHOTO_MAX_BYTES, as in production
    the partner is told the service's limit.
    """
    if face_photo_max_bytes is None:
        face_photo_max_bytes = settings.FACE_PHOTO_MAX_BYTES
    args = [sys.executable, "-m", "partners.sandbox", "--port", "0", "--control-port", "0"]
    args += ["--certs-dir", str(pki["ca.pem"].parent), "--face-photo-max-bytes", str(face_photo_max_bytes)]
    if token_ttl_s is not None:
        args += ["--token-ttl", str(token_ttl_s)]
    if clients:
        clients_file = log_dir / "clients.json"
        clients_file.write_text(json.dumps(clients))
        args += ["--clients-file", str(clients_file)]
    client_id, client_secret = next(iter((clients or DEFAULT_CLIENTS).items()))
    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_CLIENTS"}
    log_path = log_dir / "sandbox.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log)
    try:
        base_url, control_url = _wait_for_start(process, log_path)
        running = RunningSandbox(
            base_url=base_url,
            control=SandboxControl(control_url),
            pki=pki,
            client_id=client_id,
            client_secret=client_secret,
            log_path=log_path,
        )
        running.control.faults()  # the control port answers
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def _wait_for_start(process: subprocess.Popen, log_path: Path) -> tuple[str, str]:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([process.stdout], [], [], remaining)
        if not ready:
            break
        line = process.stdout.readline().decode()
        if not line:  # the process exited
            break
        started = _STARTED.search(line)
        if started:
            return started.group(1), started.group(2)
    raise RuntimeError(f"sandbox partner did not start; its log:\n{log_path.read_text()}")


@pytest.fixture(scope="session")
def dev_pki(tmp_path_factory) -> dict[str, Path]:
    return generate_dev_pki(tmp_path_factory.mktemp("dev-pki"))


@pytest.fixture(scope="session")
def sandbox(dev_pki, tmp_path_factory) -> Iterator[RunningSandbox]:
    with launch_sandbox(dev_pki, tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture
def sandbox_factory(dev_pki, tmp_path_factory):
    return lambda **options: launch_sandbox(dev_pki, tmp_path_factory.mktemp("sandbox"), **options)


@pytest.fixture
def clean_sandbox(sandbox) -> Iterator[RunningSandbox]:
    sandbox.control.reset()
    yield sandbox
    sandbox.control.reset()
