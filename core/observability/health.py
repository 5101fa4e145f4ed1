"""Liveness (/healthz) and readiness (/readyz) probes.

Readiness checks every dependency with a short timeout and answers 503 naming the ones that
failed; failure details are the exception class only (no hosts, no credentials). Apps add
information to its body that does not decide readiness (`register_readiness_info`: whether each
partner answers - a barrier decision never needs the partner, so an unreachable partner must not
take the service out of rotation). `ReadinessCollector` runs the same checks when /metrics is
scraped (`smarthome_readiness_check_ok{check}`), so an alert does not depend on anyone probing. Each web worker
pool answers its own probes, and both answers name the pool (`public` or `partner`), so a probe
that hangs or fails says which side is saturated or down.
"""

import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.core import GaugeMetricFamily


def check_database() -> None:
    for alias in settings.DATABASES:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")


def check_cache() -> None:
    key = "readyz:probe"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return the value just written")


def check_broker() -> None:
    if not settings.REDIS_URL:
        return  # embedded mode: tasks run in-process, there is no broker to reach

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1, **settings.REDIS_SSL_OPTIONS
    )
    try:
        client.ping()
    finally:
        client.close()


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}
_info: dict[str, Callable[[], dict]] = {}


def register_readiness_info(name: str, provider: Callable[[], dict]) -> None:
    """Add `provider()` to /readyz's body under `name`, as information: it never makes it 503."""
    _info[name] = provider


def run_checks() -> dict[str, dict]:
    results = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # any failure makes the service not ready
            results[name] = {"status": "fail", "error": type(exc).__name__}
        else:
            results[name] = {"status": "ok"}
        results[name]["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return results


def readiness_info() -> dict[str, dict]:
    body = {}
    for name, provider in _info.items():
        try:
            body[name] = provider()
        except Exception as exc:  # information only: its failure is reported, not raised
            body[name] = {"error": type(exc).__name__}
    return body


@never_cache
@require_GET
def healthz(request, pool: str):
    return JsonResponse({"status": "ok", "pool": pool})


@never_cache
@require_GET
def readyz(request, pool: str):
    results = run_checks()
    failed = [name for name, result in results.items() if result["status"] != "ok"]
    body = {"status": "fail" if failed else "ok", "pool": pool, "failed": failed, "checks": results,
            **readiness_info()}
    return JsonResponse(body, status=503 if failed else 200)


READY = ("smarthome_readiness_check_ok", "1 while the readiness check passes (the checks of /readyz, run at scrape)")


class ReadinessCollector:
    def describe(self):
        return [GaugeMetricFamily(*READY, labels=["check"])]

    def collect(self):
        family = GaugeMetricFamily(*READY, labels=["check"])
        for name, result in run_checks().items():
            family.add_metric([name], 1 if result["status"] == "ok" else 0)
        yield family
