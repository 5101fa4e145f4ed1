"""/readyz against dedicated PostgreSQL and Redis servers that the test stops one by one."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests import infra

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def own_servers():
    postgres = infra.postgres_executor()
    redis = infra.redis_executor()
    postgres.start()
    redis.start()
    yield postgres, redis
    for executor in (redis, postgres):
        if executor.running():
            executor.stop()
    postgres.clean_directory()


@pytest.fixture
def service(own_servers):
    postgres, redis = own_servers
    port = infra.free_port()
    env = {
        **{k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ},
        "DJANGO_SETTINGS_MODULE": "smarthome.settings",
        "DATABASE_URL": infra.postgres_url(postgres, "postgres"),
        "REDIS_URL": infra.redis_url(redis),
        "SMARTHOME_VAR_DIR": "/tmp/smarthome-test-var",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "smarthome.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "-t", "30"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    infra.wait_for_http(f"{url}/healthz")
    yield url, postgres, redis
    process.terminate()
    process.wait(10)


def test_ready_then_each_stopped_dependency_is_named(service):
    url, postgres, redis = service
    ready = requests.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["failed"] == []

    redis.stop()
    started = time.monotonic()
    no_redis = requests.get(f"{url}/readyz", timeout=10)
    assert time.monotonic() - started < 5  # short timeouts, no hanging probe
    assert no_redis.status_code == 503
    assert no_redis.json()["failed"] == ["cache", "broker"]
    assert requests.get(f"{url}/healthz", timeout=5).status_code == 200  # alive, just not ready

    redis.start()
    postgres.stop()
    no_db = requests.get(f"{url}/readyz", timeout=10)
    assert no_db.status_code == 503
    body = no_db.json()
    assert body["failed"] == ["database"]
    assert "127.0.0.1" not in no_db.text  # failure details do not leak connection strings
