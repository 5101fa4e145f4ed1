"""Test-suite wiring: real PostgreSQL + Redis by default, `--quick` for SQLite only.

The servers are started in `pytest_configure`, before pytest-django configures Django, and
their URLs are handed to the settings through DATABASE_URL and REDIS_URL exactly as in
production. Tasks run eagerly in-process unless a test starts a real worker.
"""

import os

import pytest

from tests import infra

_servers: dict = {}


def pytest_addoption(parser):
    parser.addoption(
        "--quick",
        action="store_true",
        help="inner loop: SQLite in memory and a local-memory cache; skips tests marked postgres/redis",
    )


def pytest_configure(config):
    os.environ.setdefault("SMARTHOME_VAR_DIR", "/tmp/smarthome-test-var")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    os.environ.setdefault("PSEUDONYM_KEY", "test-pseudonym-key")
    if config.getoption("--quick"):
        os.environ["DATABASE_URL"] = "sqlite:///:memory:"
        os.environ["CACHE_URL"] = "locmem://"
        os.environ["REDIS_URL"] = ""
        return
    if config.getoption("help"):
        return
    postgres = infra.postgres_executor()
    postgres.start()
    _servers["postgres"] = postgres
    redis = infra.redis_executor()
    redis.start()
    _servers["redis"] = redis
    os.environ["DATABASE_URL"] = infra.postgres_url(postgres)
    os.environ["REDIS_URL"] = infra.redis_url(redis)
    os.environ.pop("CACHE_URL", None)


def pytest_unconfigure(config):
    for name in ("redis", "postgres"):
        executor = _servers.pop(name, None)
        if executor is not None:
            executor.stop()
            if name == "postgres":
                executor.clean_directory()


def pytest_report_header(config):
    if "postgres" in _servers:
        pg, rd = _servers["postgres"], _servers["redis"]
        return [
            f"smarthome: real PostgreSQL {pg.version} at {pg.host}:{pg.port} "
            f"and real Redis at {rd.host}:{rd.port}, started by the suite",
        ]
    return ["smarthome: --quick mode, SQLite in memory and a local-memory cache (postgres/redis tests skipped)"]


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--quick"):
        return
    skip = pytest.mark.skip(reason="needs the real PostgreSQL/Redis (not with --quick)")
    for item in items:
        if "postgres" in item.keywords or "redis" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def redis_server():
    """The suite's Redis executor (host, port); skips in --quick mode."""
    if "redis" not in _servers:
        pytest.skip("no real Redis in --quick mode")
    return _servers["redis"]


@pytest.fixture
def postgres_server():
    if "postgres" not in _servers:
        pytest.skip("no real PostgreSQL in --quick mode")
    return _servers["postgres"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters, cached tokens and breaker state never leak from one test to the next."""
    from django.core.cache import cache

    cache.clear()
    yield
