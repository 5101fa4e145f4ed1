"""pytest plugin (loaded with `-p tests.servers_plugin`): real PostgreSQL + Redis for the suite.

pytest-django reads the Django settings while the initial conftests load, so the servers must
be up and DATABASE_URL / REDIS_URL set before that: this hook wraps that phase. `--quick`
swaps them for SQLite in memory and a local-memory cache.
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


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    os.environ.setdefault("SMARTHOME_VAR_DIR", "/tmp/smarthome-test-var")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    os.environ.setdefault("PSEUDONYM_KEY", "test-pseudonym-key")
    options, _ = parser.parse_known_and_unknown_args(args)
    if options.help or options.version:
        return (yield)
    if options.quick:
        os.environ["DATABASE_URL"] = "sqlite:///:memory:"
        os.environ["CACHE_URL"] = "locmemcache://"
        os.environ["REDIS_URL"] = ""
        return (yield)
    postgres = infra.postgres_executor()
    postgres.start()
    _servers["postgres"] = postgres
    redis = infra.redis_executor()
    redis.start()
    _servers["redis"] = redis
    os.environ["DATABASE_URL"] = infra.postgres_url(postgres)
    os.environ["REDIS_URL"] = infra.redis_url(redis)
    os.environ.pop("CACHE_URL", None)
    return (yield)


def pytest_unconfigure(config):
    for name in ("redis", "postgres"):
        executor = _servers.pop(name, None)
        if executor is not None:
            executor.stop()
            if name == "postgres":
                executor.clean_directory()


def pytest_report_header(config):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    if "postgres" in _servers:
        pg, rd = _servers["postgres"], _servers["redis"]
        return [
            f"smarthome: real PostgreSQL {pg.version} at {pg.host}:{pg.port} and real Redis at {rd.host}:{rd.port}, "
            f"started by the suite (Django database engine: {engine}, cache: {cache})",
        ]
    return [f"smarthome: --quick mode (database engine: {engine}, cache: {cache}); postgres/redis tests skipped"]


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--quick"):
        return
    skip = pytest.mark.skip(reason="needs the real PostgreSQL/Redis (not with --quick)")
    for item in items:
        if "postgres" in item.keywords or "redis" in item.keywords:
            item.add_marker(skip)


def running_server(name: str):
    """The suite's executor for `name`, or None in --quick mode."""
    return _servers.get(name)
