"""The partner worker pool inside the test process: a test client and a live server.

In a deployment each pool is its own process (smarthome.wsgi_partner, SMARTHOME_POOL=partner), so
its settings simply are the partner pool's. The test process runs with the public pool's
settings; the partner pool is built here from the same table (smarthome/settings/pools.py): the
pool's middleware chain, loaded once, and its URL map set on each request (`request.urlconf`),
so the settings the rest of the process sees never change - a public live server thread may be
serving at the same moment. tests/core/test_pools.py proves a real `SMARTHOME_POOL=partner`
process has exactly these settings; tests/core/test_pool_isolation.py runs both pools in gunicorn.
"""

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connections
from django.test import Client
from django.test.client import ClientHandler
from django.test.testcases import LiveServerThread
from django.test.utils import override_settings

from smarthome.settings.pools import PARTNER, Pool


class _PoolHandling:
    """A handler serving `pool`: its middleware, its URL map (or `urlconf`, a test's own)."""

    def _serve_pool(self, pool: Pool, urlconf: str | None):
        self.pool = pool
        self.urlconf = urlconf or pool.urlconf
        with override_settings(MIDDLEWARE=list(pool.middleware)):
            self.load_middleware()

    def get_response(self, request):
        request.urlconf = self.urlconf
        return super().get_response(request)


class PoolClientHandler(_PoolHandling, ClientHandler):
    def __init__(self, pool: Pool, *args, urlconf: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._serve_pool(pool, urlconf)


class PoolWSGIHandler(_PoolHandling, WSGIHandler):
    def __init__(self, pool: Pool, *, urlconf: str | None = None):
        super().__init__()
        self._serve_pool(pool, urlconf)


def partner_client(*, urlconf: str | None = None, **kwargs) -> Client:
    """A test client whose requests reach the partner pool (what nginx's mTLS listener forwards to)."""
    client = Client(**kwargs)
    client.handler = PoolClientHandler(PARTNER, client.handler.enforce_csrf_checks, urlconf=urlconf)
    return client


class PoolLiveServer:
    """A live server thread serving one pool (pytest-django's live_server serves the public one)."""

    def __init__(self, pool: Pool):
        self.handler = PoolWSGIHandler(pool)
        shared = {c.alias: c for c in connections.all() if c.vendor == "sqlite" and c.is_in_memory_db()}
        for connection in shared.values():
            connection.inc_thread_sharing()
        self.thread = LiveServerThread("localhost", lambda _default: self.handler, connections_override=shared)
        self.thread.daemon = True
        self.thread.start()
        self.thread.is_ready.wait()
        if self.thread.error:
            raise self.thread.error

    @property
    def port(self) -> int:
        return self.thread.port

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def stop(self):
        self.thread.terminate()
        for connection in self.thread.connections_override.values():
            connection.dec_thread_sharing()


@pytest.fixture(scope="session")
def _partner_live_server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        server = PoolLiveServer(PARTNER)
    yield server
    server.stop()


@pytest.fixture
def partner_live_server(_partner_live_server, live_server):
    """The partner pool, live (beside `live_server`, the public pool; transactional like it)."""
    yield _partner_live_server
    _partner_live_server.handler.urlconf = PARTNER.urlconf  # a test may have served its own URL map
