"""How we reach one partner: address, credentials, pinned CA, our client certificate, policy.

`PartnerConnection` is a plain frozen value, so the client can be used (and tested) without the
partners models; `partner_connection_for(partner)` builds it from them. `session_for(conn)`
gives the process-wide `requests.Session` of that connection: TLS 1.2 minimum, the server is
verified against the partner's CA ONLY (pinned, never the system store), our client
certificate is presented, proxies and netrc from the environment are ignored.
"""

from __future__ import annotations

import hashlib
import ssl
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from partners.client.errors import PartnerTLSError
from partners.selectors import current_credentials

# Operations whose read timeout falls back to another setting key.
_TIMEOUT_KEYS = {"allowlist_full": "allowlist", "allowlist_delta": "allowlist"}


@dataclass(frozen=True)
class ClientPolicy:
    """Timeouts, retries, breaker and token settings of one connection (defaults from settings)."""

    connect_timeout_s: float = 2.0
    read_timeouts_s: tuple[tuple[str, float], ...] = ()
    default_read_timeout_s: float = 10.0
    retries: int = 3
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0
    rate_limit_max_wait_s: float = 2.0
    breaker_fail_max: int = 5
    breaker_reset_s: float = 5.0
    token_refresh_margin_s: float = 30.0

    @classmethod
    def from_settings(cls, **overrides) -> ClientPolicy:
        values = {
            "connect_timeout_s": settings.PARTNER_CONNECT_TIMEOUT_S,
            "read_timeouts_s": tuple(sorted(settings.PARTNER_READ_TIMEOUT_S.items())),
            "retries": settings.PARTNER_RETRIES,
            "backoff_base_s": settings.PARTNER_BACKOFF_BASE_S,
            "backoff_max_s": settings.PARTNER_BACKOFF_MAX_S,
            "rate_limit_max_wait_s": settings.PARTNER_RATE_LIMIT_MAX_WAIT_S,
            "breaker_fail_max": settings.PARTNER_BREAKER_FAIL_MAX,
            "breaker_reset_s": settings.PARTNER_BREAKER_RESET_S,
            "token_refresh_margin_s": settings.PARTNER_TOKEN_REFRESH_MARGIN_S,
        }
        if "read_timeouts_s" in overrides and isinstance(overrides["read_timeouts_s"], dict):
            merged = {**dict(values["read_timeouts_s"]), **overrides["read_timeouts_s"]}
            overrides["read_timeouts_s"] = tuple(sorted(merged.items()))
        return cls(**{**values, **overrides})

    def timeout(self, operation: str) -> tuple[float, float]:
        """(connect, read) seconds for `operation`."""
        reads = dict(self.read_timeouts_s)
        read = reads.get(operation, reads.get(_TIMEOUT_KEYS.get(operation, ""), self.default_read_timeout_s))
        return self.connect_timeout_s, read


@dataclass(frozen=True)
class PartnerConnection:
    """Everything needed to call one partner. `ca_pem` is the partner's CA: PEM text/bytes or a path."""

    partner_id: int
    slug: str
    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    ca_pem: str | bytes | Path
    client_cert_path: str
    client_key_path: str
    credentials_version: int = 0
    policy: ClientPolicy = field(default_factory=ClientPolicy.from_settings)

    def url(self, path: str) -> str:
        if path.startswith("https://"):  # a full URL the partner gave us (its audit log)
            return path
        return self.base_url.rstrip("/") + path

    def ca_bytes(self) -> bytes:
        value = self.ca_pem
        if isinstance(value, Path) or (isinstance(value, str) and "-----BEGIN" not in value):
            try:
                return Path(value).read_bytes()
            except OSError as error:  # misconfigured CA file: a typed, retried failure, not a crash
                raise PartnerTLSError(operation="connect", partner=str(self.partner_id),
                                      reason="ca_unreadable") from error
        return value.encode() if isinstance(value, str) else value

    @cached_property
    def session_key(self) -> tuple:
        """What a cached session depends on (a credentials rotation or a new CA gives a new one)."""
        ca_digest = hashlib.sha256(self.ca_bytes()).hexdigest()
        return (self.partner_id, self.credentials_version, self.base_url, ca_digest,
                self.client_cert_path, self.client_key_path)


def tls_context(conn: PartnerConnection) -> ssl.SSLContext:
    """TLS >= 1.2, hostname checked, only the partner's CA trusted, our client certificate loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname + CERT_REQUIRED by default
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=conn.ca_bytes().decode("ascii"))
    context.load_cert_chain(conn.client_cert_path, conn.client_key_path)
    return context


class PinnedTLSAdapter(HTTPAdapter):
    """An HTTPAdapter whose every connection uses one prepared SSLContext and nothing else."""

    def __init__(self, context: ssl.SSLContext, **kwargs):
        self.ssl_context = context
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self.ssl_context
        return super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args, **kwargs):
        kwargs["ssl_context"] = self.ssl_context
        return super().proxy_manager_for(*args, **kwargs)

    def cert_verify(self, conn, url, verify, cert):
        # requests would point the pool at certifi's bundle when verify=True, which urllib3
        # then ADDS to our context: the pin would silently widen to every public CA.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


_sessions: dict[tuple, requests.Session] = {}
_sessions_lock = threading.Lock()


def new_session(conn: PartnerConnection) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxies or netrc credentials from the environment
    session.verify = True
    adapter = PinnedTLSAdapter(tls_context(conn), pool_connections=1, pool_maxsize=10, max_retries=0)
    session.mount("https://", adapter)
    # Plain HTTP to a partner is never allowed.
    session.mount("http://", _RefuseHTTP())
    return session


def session_for(conn: PartnerConnection) -> requests.Session:
    """The process-wide session of `conn` (one per partner and credentials version)."""
    key = conn.session_key
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            # A rotation or new CA replaces the partner's session. The old one is only dropped,
            # not closed: another thread may be in the middle of a request on it.
            for old in [k for k in _sessions if k[0] == conn.partner_id]:
                del _sessions[old]
            session = _sessions[key] = new_session(conn)
        return session


class _RefuseHTTP(requests.adapters.BaseAdapter):
    def send(self, request, **kwargs):
        raise requests.exceptions.InvalidSchema("partner calls must use https")

    def close(self):
        pass


def partner_connection_for(partner, **policy_overrides) -> PartnerConnection:
    """The connection to `partner` (a Partner row) with its current credentials.

    Raises LookupError if the partner has no current credentials, PermissionError if it is
    suspended or inactive (nothing may be sent to it then).
    """
    if not partner.is_usable:
        raise PermissionError(f"partner {partner.slug} is suspended or inactive")
    credentials = current_credentials(partner=partner)
    if credentials is None:
        raise LookupError(f"partner {partner.slug} has no current credentials")
    ca = getattr(partner, "server_ca_pem", "") or Path(settings.PARTNER_SERVER_CA_FILE)
    return PartnerConnection(
        partner_id=partner.pk,
        slug=partner.slug,
        base_url=partner.api_base_url,
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        ca_pem=ca,
        client_cert_path=str(settings.PARTNER_CLIENT_CERT_FILE),
        client_key_path=str(settings.PARTNER_CLIENT_KEY_FILE),
        credentials_version=credentials.version,
        policy=ClientPolicy.from_settings(**policy_overrides),
    )
