"""TLS to PostgreSQL and Redis, with servers of our own that speak TLS only and want client certificates.

A test CA and the server and client certificates come from the dev PKI (partners.devcerts,
generated at test time); the rogue CA of the same PKI stands for "the wrong CA". The service
runs in subprocesses configured only through its environment variables, as in a deployment.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import infra
from tests.core.test_production_settings import PRODUCTION_ENV, run_manage

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def tls_postgres(dev_pki):
    executor = infra.postgres_executor(tls_pki=dev_pki)
    executor.start()
    yield executor
    executor.stop()
    executor.clean_directory()


@pytest.fixture(scope="module")
def tls_redis(dev_pki):
    executor = infra.redis_tls_executor(dev_pki)
    executor.start()
    yield executor
    executor.stop()


@pytest.fixture
def tls_env(tls_postgres, tls_redis, dev_pki, tmp_path):
    """The service's environment for the TLS servers: verify-full with the right CA, client certificates."""
    return {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "DJANGO_SETTINGS_MODULE": "smarthome.settings",
        "SMARTHOME_VAR_DIR": str(tmp_path),
        "PSEUDONYM_KEY": "test-pseudonym-key",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{tls_postgres.port}/postgres",
        "DATABASE_SSL_MODE": "verify-full",
        "DATABASE_SSL_ROOT_CERT": str(dev_pki["ca.pem"]),
        "DATABASE_SSL_CERT": str(dev_pki["smarthome-client.pem"]),
        "DATABASE_SSL_KEY": str(dev_pki["smarthome-client.key"]),
        "REDIS_URL": f"rediss://127.0.0.1:{tls_redis.port}/0",
        "REDIS_SSL_CA_FILE": str(dev_pki["ca.pem"]),
        "REDIS_SSL_CERT_FILE": str(dev_pki["smarthome-client.pem"]),
        "REDIS_SSL_KEY_FILE": str(dev_pki["smarthome-client.key"]),
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }


def shell(env: dict, script: str) -> dict:
    """Run `script` in `manage.py shell` with `env`; it prints one JSON object."""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


DATABASE_PROBE = """
import json
from django.db import connection
try:
    with connection.cursor() as cursor:
        cursor.execute("SELECT ssl, version, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ssl, version, client_dn = cursor.fetchone()
    print(json.dumps({"ssl": ssl, "version": version, "client_dn": client_dn}))
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""

REDIS_PROBE = """
import json
from django.core.cache import cache
from core.cache.shared import count
from core.observability.health import check_broker
from partners.client.breaker import _redis_client
from smarthome.celery import app
found = {}
try:
    cache.set("tls-probe", "over tls", timeout=30)
    found["cache"] = cache.get("tls-probe")
    first = count("tls-counter", timeout_s=30)
    found["counter_step"] = count("tls-counter", timeout_s=30) - first
    found["breaker_storage"] = _redis_client().ping()
    check_broker()
    with app.connection_for_write() as connection:
        queue = connection.SimpleQueue("tls-probe")
        queue.put({"hello": "broker"})
        message = queue.get(timeout=5)
        message.ack()
        found["broker"] = message.payload
        queue.close()
    found["worker_replies"] = len(app.control.ping(timeout=3)) if WITH_WORKER else None
except Exception as exc:
    found = {"error": type(exc).__name__, "message": str(exc)}
print(json.dumps(found))
"""


def test_django_connects_to_postgresql_with_verify_full_and_a_client_certificate(tls_env):
    found = shell(tls_env, DATABASE_PROBE)
    assert found["ssl"] is True, found
    assert found["version"].startswith("TLSv1.")
    assert "CN=smarthome" in found["client_dn"]


def test_postgresql_under_the_wrong_ca_is_refused(tls_env, dev_pki):
    found = shell({**tls_env, "DATABASE_SSL_ROOT_CERT": str(dev_pki["rogue-ca.pem"])}, DATABASE_PROBE)
    assert found["error"] == "OperationalError"
    assert "certificate verify failed" in found["message"]


def test_postgresql_without_tls_or_without_a_client_certificate_is_refused(tls_env):
    found = shell({**tls_env, "DATABASE_SSL_MODE": "disable"}, DATABASE_PROBE)
    assert found["error"] == "OperationalError"
    assert "no encryption" in found["message"]  # the server's pg_hba takes hostssl only
    no_cert = {k: v for k, v in tls_env.items() if k not in ("DATABASE_SSL_CERT", "DATABASE_SSL_KEY")}
    found = shell({**no_cert, "HOME": str(Path(tls_env["SMARTHOME_VAR_DIR"]))}, DATABASE_PROBE)
    assert found["error"] == "OperationalError"
    assert "certificate" in found["message"]


def test_cache_breaker_readiness_and_celery_broker_round_trip_over_rediss(tls_env, tmp_path):
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "smarthome", "worker", "--pool", "solo", "--loglevel", "warning",
         "--hostname", "tls-worker@%h", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=tls_env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "worker.log").open("w"),
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # the worker answers a broadcast sent through the broker, over TLS both ways
            found = shell(tls_env, "WITH_WORKER = True\n" + REDIS_PROBE)
            if found.get("worker_replies") or time.monotonic() > deadline or "error" in found:
                break
            time.sleep(1)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert found == {
        "cache": "over tls", "counter_step": 1, "breaker_storage": True, "broker": {"hello": "broker"},
        "worker_replies": 1,
    }, (tmp_path / "worker.log").read_text()[-3000:]


def test_redis_under_the_wrong_ca_or_without_a_client_certificate_is_refused(tls_env, dev_pki):
    found = shell({**tls_env, "REDIS_SSL_CA_FILE": str(dev_pki["rogue-ca.pem"])}, "WITH_WORKER = False\n" + REDIS_PROBE)
    assert found["error"] == "ConnectionError"
    assert "certificate verify failed" in found["message"]
    no_cert = {k: v for k, v in tls_env.items() if k not in ("REDIS_SSL_CERT_FILE", "REDIS_SSL_KEY_FILE")}
    found = shell(no_cert, "WITH_WORKER = False\n" + REDIS_PROBE)
    assert found["error"] == "ConnectionError"


def test_a_rediss_broker_without_our_options_would_not_verify_and_ours_do(tls_env):
    """kombu alone connects to rediss:// with CERT_NONE; the settings give it verification."""
    found = shell(tls_env, "import json, ssl\nfrom django.conf import settings\n"
                           "print(json.dumps({'broker': settings.CELERY_BROKER_USE_SSL, 'cache': "
                           "settings.CACHES['default']['OPTIONS']}))")
    for options in (found["broker"], found["cache"]):
        assert options["ssl_cert_reqs"] == "required"
        assert options["ssl_check_hostname"] is True
        assert options["ssl_ca_certs"] == tls_env["REDIS_SSL_CA_FILE"]


# --- production refuses data stores off loopback without TLS -------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"DATABASE_URL": "postgres://smarthome@db.internal:5432/smarthome"}, "PostgreSQL at db.internal"),
        ({"DATABASE_URL": "postgres://smarthome@10.0.0.5:5432/smarthome?sslmode=require"}, "sslmode is require"),
        ({"DATABASE_URL": "postgres://smarthome@db.internal:5432/smarthome", "DATABASE_SSL_MODE": "verify-ca"},
         "sslmode is verify-ca"),
        ({"DATABASE_URL": "postgres://smarthome@/smarthome?host=db.internal"}, "PostgreSQL at db.internal"),
        ({"REDIS_URL": "redis://cache.internal:6379/0"}, "REDIS_URL points at Redis on cache.internal"),
        ({"CACHE_URL": "redis://10.0.0.7:6379/1"}, "CACHES['default'] points at Redis on 10.0.0.7"),
    ],
)
def test_production_refuses_network_data_stores_without_tls(override, message):
    result = run_manage("check", env={**PRODUCTION_ENV, **override})
    assert result.returncode != 0
    assert "production refuses unencrypted data stores" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    "override",
    [
        {},  # the loopback database of PRODUCTION_ENV
        {"DATABASE_URL": "postgres://smarthome@db.internal:5432/smarthome", "DATABASE_SSL_MODE": "verify-full",
         "DATABASE_SSL_ROOT_CERT": "/etc/smarthome/db-ca.pem"},
        {"DATABASE_URL": "postgres://smarthome@db.internal:5432/smarthome?sslmode=verify-full"},
        {"REDIS_URL": "rediss://cache.internal:6380/0", "REDIS_SSL_CA_FILE": "/etc/smarthome/redis-ca.pem"},
        {"REDIS_URL": "redis://127.0.0.1:6379/0"},
        {"DATABASE_URL": "postgres://smarthome@/smarthome?host=/run/postgresql"},  # a unix socket
    ],
)
def test_production_accepts_tls_or_loopback_data_stores(override):
    result = run_manage("check", "--deploy", "--fail-level", "ERROR", env={**PRODUCTION_ENV, **override})
    assert result.returncode == 0, result.stderr
