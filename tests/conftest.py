"""Shared fixtures. The real PostgreSQL and Redis come from tests/servers_plugin.py.

Their URLs reach the settings through DATABASE_URL and REDIS_URL exactly as in production.
Tasks run eagerly in-process unless a test starts a real worker.
"""

import pytest

from tests.servers_plugin import running_server

pytest_plugins = ["tests.partners.sandbox_fixtures", "tests.nginx_fixtures"]


@pytest.fixture
def redis_server():
    """The suite's Redis executor (host, port); skips in --quick mode."""
    server = running_server("redis")
    if server is None:
        pytest.skip("no real Redis in --quick mode")
    return server


@pytest.fixture
def postgres_server():
    server = running_server("postgres")
    if server is None:
        pytest.skip("no real PostgreSQL in --quick mode")
    return server


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters, cached tokens and breaker state never leak from one test to the next."""
    from django.core.cache import cache

    cache.clear()
