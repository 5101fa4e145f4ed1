"""The one-machine default (SQLite file, no Redis, tasks after commit) under concurrent clients.

A real SQLite file, a real gunicorn (2 processes x 4 threads) and the embedded scheduler beside it
(outbox dispatch every second), real deliveries to the sandbox partner over mTLS. Several
residents' apps PATCH their cars (each change queues an allowlist patch, delivered to the partner
right after commit in the request's process) and create guest passes at the same time: no request
may fail with a 500 (`database is locked`), and every allowlist patch reaches the partner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests import infra

pytestmark = [pytest.mark.slow, pytest.mark.partner]

ROOT = Path(__file__).resolve().parent.parent.parent
RESIDENTS = 4
ROUNDS = 12


def embedded_env(var_dir: Path, sandbox=None) -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "CACHE_URL", "PROMETHEUS_MULTIPROC_DIR")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "smarthome.settings",
        "SMARTHOME_VAR_DIR": str(var_dir),
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "API_RATE_PER_MIN": "100000",
        "GUEST_PASSES_ACTIVE_MAX": "100000",
        "OUTBOX_DISPATCH_INTERVAL_S": "1",
        "PYTHONPATH": str(ROOT),
    })
    if sandbox is not None:
        env.update({
            "PARTNER_CLIENT_CERT_FILE": str(sandbox.pki["smarthome-client.pem"]),
            "PARTNER_CLIENT_KEY_FILE": str(sandbox.pki["smarthome-client.key"]),
            "PARTNER_SERVER_CA_FILE": str(sandbox.pki["ca.pem"]),
        })
    return env


def run(args: list[str], env: dict) -> str:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def embedded_service(tmp_path, clean_sandbox):
    env = embedded_env(tmp_path / "var", clean_sandbox)
    run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], env)
    run([sys.executable, "manage.py", "createcachetable"], env)
    world = json.loads(run([
        sys.executable, "tests/core/sqlite_world.py", clean_sandbox.base_url, str(clean_sandbox.pki["ca.pem"]),
        clean_sandbox.client_id, clean_sandbox.client_secret, str(RESIDENTS),
    ], env).strip().splitlines()[-1])
    clean_sandbox.control.put_device(world["barrier_ref"], online=True)
    port = infra.free_port()
    log = (tmp_path / "service.log").open("w")
    processes = [
        subprocess.Popen([sys.executable, "-m", "gunicorn", "smarthome.wsgi", "-b", f"127.0.0.1:{port}",
                          "-w", "2", "-k", "gthread", "--threads", "4"], cwd=ROOT, env=env, stdout=log, stderr=log),
        subprocess.Popen([sys.executable, "manage.py", "run_scheduler"], cwd=ROOT, env=env, stdout=log, stderr=log),
    ]
    try:
        infra.wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout_s=60)
        yield f"http://127.0.0.1:{port}", world, clean_sandbox, tmp_path / "service.log"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(20)
        log.close()


def test_concurrent_writes_on_the_sqlite_default_never_fail(embedded_service):
    base, world, sandbox, log_path = embedded_service
    statuses: list[tuple[str, int]] = []
    lock = threading.Lock()

    def resident_app(index: int, person: dict):
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {person['token']}"
        for n in range(ROUNDS):
            plate = f"А{100 + index}ВС{77 + n % 2}"  # each resident's own two plates, alternately
            patched = session.patch(f"{base}/api/v1/vehicles/{person['vehicle_id']}",
                                    json={"plate": plate, "label": f"car {n}"}, timeout=60)
            created = session.post(f"{base}/api/v1/guest-passes",
                                   json={"device_id": world["barrier_id"], "plate": plate}, timeout=60)
            with lock:
                statuses.extend([("vehicle PATCH", patched.status_code), ("guest-pass POST", created.status_code)])

    threads = [threading.Thread(target=resident_app, args=(i, person)) for i, person in enumerate(world["residents"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    failures = [entry for entry in statuses if entry[1] >= 500]
    assert not failures, f"{len(failures)} of {len(statuses)} failed: {failures[:5]}\n" + log_path.read_text()[-3000:]
    assert sorted({status for _, status in statuses}) == [200, 201]
    assert len(statuses) == RESIDENTS * ROUNDS * 2
    # every allowlist patch reached the partner (delivered after commit or by the scheduler's dispatch)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        patches = [e for e in sandbox.control.log()["entries"] if e["operation"].startswith("allowlist")]
        if len(patches) >= RESIDENTS * ROUNDS:
            break
        time.sleep(0.5)
    assert len(patches) >= RESIDENTS * ROUNDS
    assert "database is locked" not in log_path.read_text()


def test_manage_py_works_on_a_fresh_checkout_without_var(tmp_path):
    """`manage.py runserver` without `make run` once failed with "unable to open database file"."""
    var_dir = tmp_path / "fresh" / "var"
    env = embedded_env(var_dir)
    done = subprocess.run([sys.executable, "manage.py", "showmigrations", "core"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (var_dir / "smarthome.sqlite3").exists()
