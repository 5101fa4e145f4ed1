"""The outbox under partner outage and worker death, with REAL processes: Celery worker and beat
subprocesses on the suite's Redis, the test database on the suite's PostgreSQL, the sandbox
partner over HTTPS + mTLS. Nothing is mocked; delivery tasks go through the broker.

1. The partner is down while 200 messages are written and a worker tries them; it comes back:
   every message is delivered, and the partner's log shows each idempotency key exactly once,
   in order per subject.
2. A worker is SIGKILLed in the middle of the backlog and a new one started: the same holds
   (messages it held are re-dispatched by beat after their lease; the partner dedupes a
   redelivery of one it had already processed).
3. The partner comes back while the dispatcher runs only once a minute and failed messages back
   off for half a minute: the probe the open breaker allowed (a delayed task) finds it back,
   and everything that waited is delivered within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection, transaction

from partners.models import OutboxMessage
from partners.outbox.services import outbox_enqueue
from smarthome.celery import app as celery_app
from tests.partners import outbox_fixtures
from tests.partners.outbox_fixtures import face_payload

# the shared fixtures, made visible to pytest in this module
client_settings = outbox_fixtures.client_settings
sandbox_partner = outbox_fixtures.sandbox_partner

pytestmark = [
    pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
SUBJECTS = 100  # x (face_put, face_delete) = 200 messages
Status = OutboxMessage.Status


def database_url() -> str:
    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


@pytest.fixture
def broker_dispatch():
    """This process sends its delivery tasks to the real broker (not eagerly), like a web worker."""
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = True


class CeleryProcesses:
    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "smarthome", *args], cwd=ROOT, env=self.env,
            stdout=log, stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def worker(self, name: str) -> subprocess.Popen:
        return self.start(name, "worker", "--pool", "threads", "--concurrency", "4", "--loglevel", "warning",
                          "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat")

    def beat(self) -> subprocess.Popen:
        return self.start("beat", "beat", "--loglevel", "warning", "--schedule", str(self.log_dir / "beat-schedule"))

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.log_dir.glob("*.log"))

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def celery_processes(sandbox_partner, clean_sandbox, tmp_path, broker_dispatch):
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "LOG_LEVEL": "WARNING",
        "PARTNER_CLIENT_CERT_FILE": str(clean_sandbox.pki["smarthome-client.pem"]),
        "PARTNER_CLIENT_KEY_FILE": str(clean_sandbox.pki["smarthome-client.key"]),
        "PARTNER_CONNECT_TIMEOUT_S": "1",
        "PARTNER_RETRIES": "1",
        "PARTNER_BACKOFF_BASE_S": "0.05",
        "PARTNER_BACKOFF_MAX_S": "0.2",
        "PARTNER_BREAKER_FAIL_MAX": "5",
        "PARTNER_BREAKER_RESET_S": "1",
        "OUTBOX_MAX_ATTEMPTS": "1000",  # an outage must not dead-letter anything here
        "OUTBOX_BACKOFF_BASE_S": "0.2",
        "OUTBOX_BACKOFF_MAX_S": "1",
        "OUTBOX_DISPATCH_INTERVAL_S": "0.5",
        "OUTBOX_REDISPATCH_AFTER_S": "3",
    }
    processes = CeleryProcesses(env, tmp_path)
    yield processes
    processes.stop_all()


def write_backlog(partner, sandbox) -> list[str]:
    """200 messages, each committed in its own transaction (as 200 separate changes would be)."""
    keys = []
    for n in range(SUBJECTS):
        subject = f"sub_resilience{n:03d}"
        for operation, payload in (("face_put", face_payload(sandbox, subject)), ("face_delete", {"subject": subject})):
            key = f"{operation}-{n:03d}"
            with transaction.atomic():
                outbox_enqueue(partner_id=partner.pk, operation=operation, ordering_key=f"subject:{subject}",
                               payload=payload, idempotency_key=key)
            keys.append(key)
    return keys


def wait_until(condition, timeout_s: float, processes: CeleryProcesses, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    counts = dict(Counter(OutboxMessage.objects.values_list("status", flat=True)))
    pytest.fail(f"timed out waiting for {what}; statuses {counts}\n{processes.logs()}")


def delivered() -> int:
    return OutboxMessage.objects.filter(status=Status.DELIVERED).count()


def assert_each_key_exactly_once_in_order(sandbox, keys: list[str]) -> None:
    entries = sandbox.control.log()["entries"]
    seen = Counter(e["request_id"] for e in entries)
    assert sorted(seen) == sorted(keys)
    assert set(seen.values()) == {1}, {k: v for k, v in seen.items() if v != 1}
    position = {e["request_id"]: i for i, e in enumerate(entries)}
    for n in range(SUBJECTS):
        assert position[f"face_put-{n:03d}"] < position[f"face_delete-{n:03d}"]
    state = sandbox.control.state()
    assert state["faces"] == {}  # every enrolment was followed by its deletion
    assert len(state["deletions"]) == SUBJECTS
    messages = OutboxMessage.objects.all()
    assert {m.status for m in messages} == {Status.DELIVERED}
    assert all(m.payload["jwe"] == "" for m in messages if m.operation == "face_put")


def test_partner_outage_loses_nothing_and_delivers_each_message_once(
    sandbox_partner, clean_sandbox, celery_processes
):
    clean_sandbox.control.down()
    keys = write_backlog(sandbox_partner, clean_sandbox)
    assert OutboxMessage.objects.filter(status=Status.PENDING).count() == 200
    celery_processes.worker("worker-a")
    celery_processes.beat()
    # The worker works through the backlog against a dead partner: failures, then the breaker.
    wait_until(lambda: OutboxMessage.objects.exclude(last_error="").count() >= 50, 30, celery_processes,
               "failed attempts during the outage")
    assert delivered() == 0
    assert OutboxMessage.objects.filter(last_error="breaker_open").exists()
    clean_sandbox.control.up()
    wait_until(lambda: delivered() == 200, 40, celery_processes, "all 200 messages delivered")
    assert_each_key_exactly_once_in_order(clean_sandbox, keys)


def test_a_partner_back_from_an_outage_gets_what_waited_within_seconds(sandbox_partner, clean_sandbox,
                                                                       celery_processes):
    celery_processes.env.update({
        "PARTNER_BREAKER_RESET_S": "3",
        "OUTBOX_DISPATCH_INTERVAL_S": "60",  # the beat dispatcher cannot be what brings them
        "OUTBOX_BACKOFF_BASE_S": "30",  # nor the messages' own next attempts
        "OUTBOX_BACKOFF_MAX_S": "60",
    })
    clean_sandbox.control.down()
    keys = write_backlog(sandbox_partner, clean_sandbox)
    celery_processes.worker("worker-a")
    celery_processes.beat()
    wait_until(lambda: OutboxMessage.objects.filter(last_error="breaker_open").count() >= 20, 30, celery_processes,
               "messages deferred by the open breaker")
    assert delivered() == 0
    clean_sandbox.control.up()
    back = time.monotonic()
    wait_until(lambda: delivered() == 200, 20, celery_processes, "all 200 messages delivered")
    # the probe within PARTNER_BREAKER_RESET_S of the partner's return, then the backlog
    assert time.monotonic() - back < 15
    assert_each_key_exactly_once_in_order(clean_sandbox, keys)


def test_worker_killed_mid_run_loses_nothing_and_delivers_each_message_once(
    sandbox_partner, clean_sandbox, celery_processes
):
    clean_sandbox.control.set_faults(latency_ms=30)  # slow enough to kill the worker mid-backlog
    keys = write_backlog(sandbox_partner, clean_sandbox)
    first = celery_processes.worker("worker-a")
    celery_processes.beat()
    wait_until(lambda: delivered() >= 30, 30, celery_processes, "the first worker to deliver some")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    at_kill = delivered()
    assert at_kill < 200, "the worker finished before it could be killed; raise the latency"
    celery_processes.worker("worker-b")
    wait_until(lambda: delivered() == 200, 40, celery_processes, "all 200 messages delivered after the kill")
    assert_each_key_exactly_once_in_order(clean_sandbox, keys)
