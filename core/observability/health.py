"""Liveness (/healthz) and readiness (/readyz) probes.

Readiness checks every dependency with a short timeout and answers 503 naming the ones that
failed; failure details are the exception class only (no hosts, no credentials). Each web worker
pool answers its own probes, and both answers name the pool (`public` or `partner`), so a probe
that hangs or fails says which side is saturated or down.
"""

import time

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


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
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1, **settings.REDIS_SSL_OPTIONS
    )
    try:
        client.ping()
    finally:
        client.close()


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


@never_cache
@require_GET
def healthz(request, pool: str):
    return JsonResponse({"status": "ok", "pool": pool})


@never_cache
@require_GET
def readyz(request, pool: str):
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
    failed = [name for name, result in results.items() if result["status"] != "ok"]
    body = {"status": "fail" if failed else "ok", "pool": pool, "failed": failed, "checks": results}
    return JsonResponse(body, status=503 if failed else 200)
