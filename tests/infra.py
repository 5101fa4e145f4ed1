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

from mirakuru import TCPExecutor
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


def _give_to_postgres(path: Path, mode: int) -> None:
    os.chmod(path, mode)
    if os.getuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _postgres_tls_options(base: Path, pki: dict[str, Path]) -> str:
    """Server options for TLS only, with client certificates: `pki` is a dev PKI
    (partners.devcerts); the server presents ``smarthome-server.pem`` (localhost, 127.0.0.1) and
    accepts TCP connections over TLS with a client certificate from ``ca.pem``, nothing else."""
    tls = base / "tls"
    tls.mkdir()
    _give_to_postgres(tls, 0o700)
    for source, target in (("smarthome-server.pem", "server.pem"), ("smarthome-server.key", "server.key"),
                           ("ca.pem", "ca.pem")):
        shutil.copyfile(pki[source], tls / target)
        _give_to_postgres(tls / target, 0o600)
    (tls / "pg_hba.conf").write_text(
        "local all all trust\n"
        "hostssl all all 127.0.0.1/32 trust clientcert=verify-ca\n"
    )
    _give_to_postgres(tls / "pg_hba.conf", 0o600)
    return (
        f" -c ssl=on -c ssl_cert_file='{tls / 'server.pem'}' -c ssl_key_file='{tls / 'server.key'}'"
        f" -c ssl_ca_file='{tls / 'ca.pem'}' -c hba_file='{tls / 'pg_hba.conf'}'"
    )


def postgres_executor(port: int | None = None, *, tls_pki: dict[str, Path] | None = None) -> PostgreSQLExecutor:
    """The suite's PostgreSQL; with `tls_pki` (a dev PKI), one that takes TLS connections only."""
    base = _dir_for_postgres("smarthome-pg-")
    tls_options = _postgres_tls_options(base, tls_pki) if tls_pki is not None else ""
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
        "-c max_connections=200 -c listen_addresses=127.0.0.1 -c audit.allow_truncate=on" + tls_options,
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


def redis_tls_executor(pki: dict[str, Path], port: int | None = None) -> TCPExecutor:
    """A Redis that speaks TLS only (no plain port), presenting ``smarthome-server.pem`` and
    demanding a client certificate from the dev PKI's ``ca.pem``."""
    datadir = Path(tempfile.mkdtemp(prefix="smarthome-redis-tls-"))
    port = port or free_port()
    command = [
        REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", str(pki["smarthome-server.pem"]), "--tls-key-file", str(pki["smarthome-server.key"]),
        "--tls-ca-cert-file", str(pki["ca.pem"]), "--tls-auth-clients", "yes",
        "--dir", str(datadir), "--save", "", "--appendonly", "no", "--loglevel", "warning",
    ]
    return TCPExecutor(command, host="127.0.0.1", port=port, timeout=30)


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
