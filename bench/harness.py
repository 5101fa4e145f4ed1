"""Shared pieces of the benchmarks: own PostgreSQL/Redis, migrated database, gunicorn, wrk.

Every benchmark measures its baseline in the same run on the same machine and prints ratios,
so figures from different machines stay comparable.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import infra  # noqa: E402

PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": "bench-" + "s" * 60,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "PSEUDONYM_KEY": "bench-pseudonym-key",
    "SEARCH_INDEX_KEY": "bench-search-index-key",
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "LOG_LEVEL": "WARNING",
}


@contextlib.contextmanager
def own_servers():
    """A fresh PostgreSQL and Redis for this run; yields (database_url, redis_url)."""
    postgres, redis = infra.postgres_executor(), infra.redis_executor()
    postgres.start()
    redis.start()
    try:
        yield infra.postgres_url(postgres, "postgres"), infra.redis_url(redis)
    finally:
        redis.stop()
        postgres.stop()
        postgres.clean_directory()


def base_env(**extra: str) -> dict[str, str]:
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return {**keep, "SMARTHOME_VAR_DIR": "/tmp/smarthome-bench-var", **extra}


def production_env(database_url: str, redis_url: str, *, proxy_secret: str, **extra: str) -> dict[str, str]:
    """What a pool needs to serve in production settings (bench.settings) on this run's PostgreSQL and
    Redis, with fresh keys, believing the proxy on 127.0.0.1 that presents `proxy_secret`."""
    return base_env(
        DATABASE_URL=database_url, REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="bench.settings", **PRODUCTION_ENV,
        FIELD_ENCRYPTION_KEYS="bench:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        AUDIT_SIGNING_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        CONSENT_RECEIPT_SIGNING_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        TRUSTED_PROXY_CIDRS="127.0.0.1/32", PROXY_AUTH_SECRET=proxy_secret,
        CELERY_TASK_ALWAYS_EAGER="false",  # seeding queues patches: not sent
        **extra,
    )


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


@contextlib.contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 2, port: int | None = None, app: str = "smarthome.wsgi"):
    """gunicorn serving one pool of the project (`app`: smarthome.wsgi or smarthome.wsgi_partner) with
    `env`; yields its base URL."""
    port = port or infra.free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", app, "-b", f"127.0.0.1:{port}", "-w", str(workers),
         "--access-logfile", "/dev/null", "--error-logfile", "/dev/null"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    infra.wait_for_http(f"{url}/healthz")
    try:
        yield url
    finally:
        process.terminate()
        process.wait(15)


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0  # answered in the run
    cpu_s: dict | None = None  # CPU seconds each process group spent during the run (CpuMeter), wrk's own included

    def row(self, name: str) -> str:
        return (
            f"{name:<28} {self.requests_per_s:>10.0f} req/s   "
            f"p50 {self.p50_ms:>7.2f} ms   p99 {self.p99_ms:>7.2f} ms"
        )


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(url: str, *, connections: int = 32, duration_s: int = 10, threads: int = 2,
        script: Path | None = None, cpu: CpuMeter | None = None) -> WrkResult:
    """Run wrk against `url` and parse throughput, p50, p99 and error counts; with `cpu`, also the CPU
    time each of its process groups and wrk itself spent meanwhile."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    args = [binary, "-t", str(threads), "-c", str(connections), "-d", f"{duration_s}s", "--latency", url]
    if script:
        args[1:1] = ["-s", str(script)]
    before = cpu.snapshot() if cpu else None
    output = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    spent = cpu.spent_since(before) if cpu else None
    latencies = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s|m))\s*$", output, re.MULTILINE))
    if set(latencies) != {"50", "99"}:
        raise RuntimeError(f"wrk's output has no latency percentiles:\n{output}")
    parsed = {k: re.match(r"([\d.]+)(us|ms|s|m)", v).groups() for k, v in latencies.items()}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_ms=_ms(*parsed["50"]),
        p99_ms=_ms(*parsed["99"]),
        errors=errors + (int(non2xx.group(1)) if non2xx else 0),
        requests=int(re.search(r"(\d+) requests in", output).group(1)),
        cpu_s=spent,
    )


def _postgres_durability(statement: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for name in ("fsync", "full_page_writes", "synchronous_commit"):
            cursor.execute(statement.format(name=name))
        cursor.execute("SELECT pg_reload_conf()")
    time.sleep(1)  # every backend takes the new settings at its next statement


@contextlib.contextmanager
def durable_commits():
    """PostgreSQL as production runs it - fsync, full-page writes, synchronous commit: a commit returns
    once its WAL is on disk - for the block. The bench's server, like the test suite's, runs without
    them (tests.infra), so a commit costs no disk flush there. Needs Django set up on that server."""
    _postgres_durability("ALTER SYSTEM SET {name} = on")
    try:
        yield
    finally:
        _postgres_durability("ALTER SYSTEM RESET {name}")


class CpuMeter:
    """CPU time (user + system) spent by groups of processes, each the process listening on a TCP
    port and all its descendants, those that exited included (gunicorn's master and workers;
    PostgreSQL's postmaster and every backend; Redis), plus the children this process waited for
    meanwhile (wrk). Unlike wall time,
    CPU per request is hardly moved by other work on the machine, and it shows where a request's
    cost lands: on 2 cores shared by all of them, throughput is about cores / (CPU per request)."""

    def __init__(self, ports: dict[str, int]):
        listening = {conn.laddr.port: conn.pid for conn in psutil.net_connections(kind="tcp")
                     if conn.status == psutil.CONN_LISTEN and conn.pid}
        missing = sorted(name for name, port in ports.items() if port not in listening)
        if missing:
            raise RuntimeError(f"no process listens for {missing}")
        self.roots = {name: psutil.Process(listening[port]) for name, port in ports.items()}

    def snapshot(self) -> dict:
        seen: dict[str, dict[int, float]] = {}
        for name, root in self.roots.items():
            times = seen[name] = {}
            for process in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    used = process.cpu_times()
                    times[process.pid] = used.user + used.system
            # children that exited meanwhile (a database connection closed after DATABASE_CONN_MAX_AGE_S,
            # a worker replaced) left their CPU time to the root that reaped them
            used = root.cpu_times()
            times[root.pid] += used.children_user + used.children_system
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        seen["wrk"] = {0: children.ru_utime + children.ru_stime}
        return seen

    def spent_since(self, before: dict) -> dict[str, float]:
        """CPU seconds per group since `before` (what processes born meanwhile spent counts whole;
        what those that exited spent is in their reaper's children times)."""
        after = self.snapshot()
        return {name: sum(times.values()) - sum(before[name].values()) for name, times in after.items()}


@contextlib.contextmanager
def partner_stack(prefix: str):
    """Own PostgreSQL + Redis + a sandbox partner, the database migrated and Django set up in this process.

    Yields (pki, sandbox, env, work dir); `env` is what a worker subprocess needs to join the same stack.
    """
    import tempfile

    from partners.devcerts import generate_dev_pki
    from tests.partners.sandbox_fixtures import launch_sandbox

    work = Path(tempfile.mkdtemp(prefix=prefix))
    pki = generate_dev_pki(work / "pki")
    with own_servers() as (database_url, redis_url):
        env = base_env(
            DATABASE_URL=database_url, REDIS_URL=redis_url, CELERY_TASK_ALWAYS_EAGER="false", LOG_LEVEL="WARNING",
            PSEUDONYM_KEY="bench-pseudonym-key",
            PARTNER_CLIENT_CERT_FILE=str(pki["smarthome-client.pem"]),
            PARTNER_CLIENT_KEY_FILE=str(pki["smarthome-client.key"]), PARTNER_SERVER_CA_FILE=str(pki["ca.pem"]),
            OUTBOX_DISPATCH_INTERVAL_S="1",
        )
        manage("migrate", "--noinput", env=env)
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "smarthome.settings"
        import django

        django.setup()
        with launch_sandbox(pki, work) as sandbox:  # it reads the settings: after setup
            yield pki, sandbox, env, work
