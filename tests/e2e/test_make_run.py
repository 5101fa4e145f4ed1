"""`make run`'s startup path (scripts/run_dev.py), run as a user runs it: a fresh var directory,
the embedded mode (SQLite, no Redis), every process on its own free port.

Once it prints its URLs: the sandbox knows exactly the demo's devices (no junk parsed out of a
shell's output), our database shows them online (reported by the sandbox through our partner API),
and the demo's first deliveries reached the partner at once (the sandbox was up before seeding:
no pending outbox message, no breaker opened). Then SIGTERM stops everything it started.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from partners.sandbox.control import SandboxControl
from tests import infra

pytestmark = [pytest.mark.slow, pytest.mark.partner]

ROOT = Path(__file__).resolve().parent.parent.parent
READY = "==> smarthome is running"
STARTUP_TIMEOUT_S = 300


@pytest.fixture
def make_run(tmp_path):
    web, sandbox, control, tls, partner_tls = infra.free_ports(5)
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "CACHE_URL", "CELERY_TASK_ALWAYS_EAGER",
                          "PROMETHEUS_MULTIPROC_DIR", "DJANGO_SETTINGS_MODULE")}
    env.update({
        "SMARTHOME_VAR_DIR": str(tmp_path / "var"), "SMARTHOME_WEB_PORT": str(web), "SANDBOX_PORT": str(sandbox),
        "SANDBOX_CONTROL_PORT": str(control), "SMARTHOME_TLS_PORT": str(tls),
        "SMARTHOME_PARTNER_TLS_PORT": str(partner_tls), "PYTHONUNBUFFERED": "1",
    })
    process = subprocess.Popen([sys.executable, "scripts/run_dev.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    output: list[str] = []

    def read():
        for line in process.stdout:
            output.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                if READY in lines.get(timeout=max(deadline - time.monotonic(), 0.1)):
                    break
            except queue.Empty:
                pytest.fail("make run did not start within the timeout:\n" + "".join(output[-80:]))
            if process.poll() is not None:
                pytest.fail("make run exited:\n" + "".join(output[-80:]))
        yield {"var": tmp_path / "var", "control": f"http://127.0.0.1:{control}", "web": web,
               "process": process, "output": output}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def rows(database: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(database) as db:
        return db.execute(sql).fetchall()


def test_make_run_starts_a_demo_whose_devices_are_at_the_sandbox_and_online(make_run):
    database = make_run["var"] / "smarthome.sqlite3"
    ours = dict(rows(database, "SELECT d.partner_device_ref, d.online FROM access_device d "
                               "JOIN partners_partner p ON p.id = d.partner_id WHERE p.slug = 'sandbox'"))
    assert len(ours) == 8
    at_sandbox = SandboxControl(make_run["control"]).state()["devices"]
    assert set(at_sandbox) == set(ours)  # exactly the demo's devices: nothing parsed out of a shell's output
    assert all(online for online in ours.values()), ours
    assert rows(database, "SELECT count(*) FROM partners_outboxmessage WHERE status != 'delivered'") == [(0,)]
    assert "breaker" not in "".join(make_run["output"]).lower()

    process = make_run["process"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", make_run["web"]), timeout=2):
        pass  # the web service stopped with it
