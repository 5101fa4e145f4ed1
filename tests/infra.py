"""Real PostgreSQL and Redis servers for the test suite, from Debian's binaries.

pytest-postgresql's and pytest-redis's executors start and stop them; PostgreSQL refuses to
run as root, so its pg_ctl goes through tests/bin/pg_ctl, which drops to the `postgres` user.
"""

import os
import pwd
import shutil
import socket
import tempfile
from pathlib import Path

from pytest_postgresql.executors.proc import PostgreSQLExecutor
from pytest_redis.executor.process import RedisExecutor

PG_CTL = str(Path(__file__).parent / "bin" / "pg_ctl")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (held open together while chosen: two free_port() calls in a row
    may return the same port)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _dir_for_postgres(prefix: str) -> Path:
    """A temp directory the postgres user may write (when we are root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.getuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def postgres_executor(port: int | None = None) -> PostgreSQLExecutor:
    base = _dir_for_postgres("smarthome-pg-")
    return PostgreSQLExecutor(
        executable=PG_CTL,
        host="127.0.0.1",
        port=port or free_port(),
        datadir=str(base / "data"),
        unixsocketdir=str(base),
        logfile=str(base / "postgresql.log"),
        startparams="-w",
        dbname="smarthome",
        user="postgres",
        # audit.allow_truncate: Django's flush between transactional tests truncates every table,
        # the audit ones included (audit migration 0003 refuses that anywhere else)
        postgres_options="-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        "-c max_connections=200 -c listen_addresses=127.0.0.1 -c audit.allow_truncate=on",
        timeout=60,
    )


def redis_executor(port: int | None = None) -> RedisExecutor:
    datadir = Path(tempfile.mkdtemp(prefix="smarthome-redis-"))
    return RedisExecutor(
        executable=REDIS_SERVER,
        databases=16,
        redis_timeout=30,
        loglevel="warning",
        host="127.0.0.1",
        port=port or free_port(),
        datadir=datadir,
        startup_timeout=30,
    )


def postgres_url(executor: PostgreSQLExecutor, dbname: str = "smarthome") -> str:
    return f"postgres://{executor.user}@{executor.host}:{executor.port}/{dbname}"


def redis_url(executor: RedisExecutor, db: int = 0) -> str:
    return f"redis://{executor.host}:{executor.port}/{db}"


def wait_for_http(url: str, *, timeout_s: float = 30, **request_kwargs) -> None:
    """Poll `url` until something answers (any status) or raise TimeoutError."""
    import time

    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2, **request_kwargs)
            return
        except requests.RequestException:  # refused, reset, or slow while the server starts
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered at {url} within {timeout_s} s")


def stop_process(process, *, timeout_s: float = 10) -> None:
    """Terminate a server the tests started; kill it if it does not stop within `timeout_s`."""
    import subprocess

    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
