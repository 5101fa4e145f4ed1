"""TLS to the data stores: the Redis client options, and what production refuses.

Plain functions of configuration values, used by the settings modules (no Django import).

- PostgreSQL: libpq's own options (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) in the database
  OPTIONS, from DATABASE_URL's query string or the DATABASE_SSL_* variables.
- Redis: a ``rediss://`` URL gets redis-py's SSL options - the server certificate is always
  verified, host name included, against REDIS_SSL_CA_FILE (or the system's CAs), with an optional
  client certificate. The same options serve Django's cache, the raw cache client, the circuit
  breaker's storage, the readiness probe and Celery's broker (``broker_use_ssl``; without it
  kombu would connect to a ``rediss://`` broker without verifying anything).
- Production refuses a store that is reached over the network (not loopback, not a unix
  socket) without TLS: PostgreSQL needs ``sslmode=verify-full``, Redis a ``rediss://`` URL.
"""

import ipaddress
from urllib.parse import urlsplit

VERIFYING_SSLMODE = "verify-full"


def redis_ssl_options(url: str, *, ca_file: str = "", cert_file: str = "", key_file: str = "") -> dict:
    """redis-py keyword arguments for `url`: the verified-TLS options for ``rediss://``, else none
    (a plain connection refuses ssl_* arguments)."""
    if urlsplit(url).scheme != "rediss":
        return {}
    options = {"ssl_cert_reqs": "required", "ssl_check_hostname": True}
    for name, value in (("ssl_ca_certs", ca_file), ("ssl_certfile", cert_file), ("ssl_keyfile", key_file)):
        if value:
            options[name] = value
    return options


def is_loopback(host: str) -> bool:
    """True for a host only this machine reaches: loopback addresses, `localhost`, a unix socket
    directory (libpq's empty host or a path)."""
    host = (host or "").strip("[]")
    if not host or host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def database_tls_problem(database: dict) -> str | None:
    """Why production must refuse this DATABASES entry, or None."""
    options = database.get("OPTIONS", {})
    host = str(database.get("HOST") or options.get("host", ""))  # libpq takes OPTIONS' host when HOST is empty
    if database.get("ENGINE") != "django.db.backends.postgresql" or is_loopback(host):
        return None
    sslmode = options.get("sslmode", "")
    if sslmode == VERIFYING_SSLMODE:
        return None
    return (
        f"PostgreSQL at {host} is not on loopback and its sslmode is "
        f"{sslmode or 'unset'}: set DATABASE_SSL_MODE=verify-full and DATABASE_SSL_ROOT_CERT"
    )


def redis_tls_problem(name: str, url: str) -> str | None:
    """Why production must refuse the Redis URL of setting `name`, or None."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return None  # a unix socket, or not Redis at all (memory://, locmem)
    if parts.scheme == "rediss" or is_loopback(parts.hostname or ""):
        return None
    return f"{name} points at Redis on {parts.hostname} without TLS: use a rediss:// URL (and REDIS_SSL_CA_FILE)"
