"""Shared fixtures. The real PostgreSQL and Redis come from tests/servers_plugin.py.

Their URLs reach the settings through DATABASE_URL and REDIS_URL exactly as in production.
Tasks run eagerly in-process unless a test starts a real worker.
"""

import secrets

import psycopg
import pytest

from tests.servers_plugin import running_server
from tests.translations import compile_translations

compile_translations()

pytest_plugins = [
    "tests.partners.sandbox_fixtures",
    "tests.nginx_fixtures",
    "tests.pools",
    "tests.identity.helpers",
    "tests.identity.oidc_fixtures",
    "tests.identity.ldap_fixtures",
]


@pytest.fixture(autouse=True)
def _test_language(request, settings):
    """Tests speak English unless marked `@pytest.mark.language("ru")`: the assertions of the suite
    read English texts (English stays available: Accept-Language, the language switch), while the
    service's own default, Russian (settings.LANGUAGE_CODE), is what the marked tests check - the
    portal's pages, problem documents, e-mails (tests/core/test_translations.py and others)."""
    marker = request.node.get_closest_marker("language")
    settings.LANGUAGE_CODE = marker.args[0] if marker else "en"


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


@pytest.fixture
def scratch_database(postgres_server):
    """The URL of a new, empty database on the suite's PostgreSQL, dropped afterwards (for tests that
    run the real `manage.py migrate` in a subprocess without touching any other test's database)."""
    name = f"scratch_{secrets.token_hex(4)}"
    dsn = f"host={postgres_server.host} port={postgres_server.port} user=postgres dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://postgres@{postgres_server.host}:{postgres_server.port}/{name}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_sends(monkeypatch):
    """Every request this process sends to Redis (a pipeline or a script call is one)."""
    from redis.connection import AbstractConnection

    sent = []
    original = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return sent


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Rate-limit counters, cached tokens, breaker state and the processes' decision facts never leak
    from one test to the next (a rolled-back test leaves the change counter where it was)."""
    from django.core.cache import cache

    from audit import refusals
    from core.cache.versioned import clear_all
    from partners.client.tokens import forget_local_tokens

    cache.clear()
    clear_all()
    forget_local_tokens()
    refusals._pending.clear()  # counts buffered by a previous test's refused partner calls


@pytest.fixture(autouse=True)
def _decision_data_version_per_statement(request):
    """A rolled-back test never commits, so the deferred triggers that record data changes at
    commit (access migration 0014) would never fire and the decision cache would serve facts the
    test has since changed. Inside such a test they fire per statement instead, which is what
    another connection sees after a commit. Transactional tests keep the production behaviour."""
    transactional = "transactional_db" in request.fixturenames or any(
        marker.kwargs.get("transaction") for marker in request.node.iter_markers("django_db")
    )
    wants_db = "db" in request.fixturenames or request.node.get_closest_marker("django_db") is not None
    if wants_db and not transactional:
        request.getfixturevalue("db")
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS zz_decision_data_changed IMMEDIATE")

