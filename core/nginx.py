"""nginx as the TLS terminator: the configuration, rendered for one machine.

Two listeners, each in front of its own worker pool (smarthome/settings/pools.py), so public
load cannot occupy the workers that decide for barriers:
- the public one (residents, admin) -> the public pool (`upstream`): TLS, no client
  certificate, `/partner/` and `/metrics` not served; each client address is limited to
  `public_rate_per_s` requests per second (with a burst of `public_burst`) and
  `public_connections` requests in progress at once - beyond either, nginx answers 429 itself
  (a problem document with Retry-After) and the request never reaches a worker;
- the partner one -> the partner pool (`partner_upstream`): TLS with `ssl_verify_client on`
  against the partners' CA; the verified certificate travels to the service in X-Client-Cert /
  X-Client-Verify. Partners are limited per partner by the service (PARTNER_DECISION_RATE).

The hop to the service is authenticated: every forwarded request carries the deployment's
proxy secret in X-Proxy-Auth, and the service believes X-Forwarded-* and X-Client-* only from a
TRUSTED_PROXY_CIDRS (or unix-socket) peer that presents it (core/http/proxy.py), in either pool. An
upstream is `host:port` or `unix:/path/to/socket`. Both listeners overwrite whatever X-Client-*,
X-Forwarded-* and X-Proxy-Auth headers the caller sent. The configuration file holds the
secret and is written readable by its owner only.

What else the configuration promises (tests/core/test_nginx_surface.py):
- every response nginx itself makes on /api/, /partner/, /integration/ and /o/ is a problem document
  (application/problem+json), as are the request-level refusals of both listeners (405 for a
  method outside ALLOWED_METHODS, with Allow; 400 for a missing or bad client certificate; 429
  over a client address's limits, with Retry-After; tests/core/test_public_limits.py);
- `server_tokens off`;
- face photo uploads (`/api/v1/biometrics/`) stay in memory: the body is streamed to the
  service (`proxy_request_buffering off`) from a buffer as large as the upload limit, never
  spooled to `client_body_temp_path`; no response is spooled to disk either
  (`proxy_max_temp_file_size 0`);
- one JSON access-log line per request on both listeners, with the path only (`$uri`: no query
  string) and the request id the service uses.
"""

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from core.http.problem_types import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

LISTENERS = ("public", "partner")
ALLOWED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
FACE_UPLOAD_PREFIX = "/api/v1/biometrics/"
# A refused client gets its 429 slowly - about a second for the ~450 bytes of headers and problem
# document - at no CPU cost (a timer holds the connection). HTTP/1.1 sends one request at a time
# per connection, so a flood over N connections is slowed to about N requests per second.
REFUSAL_BYTES_PER_S = 256
_SAFE_SECRET = re.compile(r"^[A-Za-z0-9._~+/=-]{32,256}$")  # nothing nginx's parser would read specially

# The same acceptance rule as core.http.request_context: a caller's X-Request-ID is kept if it is
# a safe token, else nginx makes one ($request_id, 32 hex digits) and hands it to the service.
_HTTP_MAPS = r"""
  map $http_x_request_id $smarthome_request_id {
    "~^[A-Za-z0-9._:-]{1,64}$" $http_x_request_id;
    default $request_id;
  }
  map $http_host $smarthome_host {
    "" $host;
    default $http_host;
  }"""

_ACCESS_LOG_FORMAT = (
    "log_format smarthome_json escape=json '{"
    '"time":"$time_iso8601","listener":"$server_port","client":"$remote_addr",'
    '"method":"$request_method","path":"$uri","status":$status,"bytes":$body_bytes_sent,'
    '"duration_s":$request_time,"upstream_s":"$upstream_response_time",'
    '"request_id":"$smarthome_request_id"'
    "}';"
)


@dataclass(frozen=True)
class ProxyConfig:
    prefix: Path  # writable directory for pid, logs, temp files
    upstream: str  # the public pool (smarthome.wsgi): host:port, or unix:/path of its socket
    partner_upstream: str  # the partner pool (smarthome.wsgi_partner), likewise
    public_port: int
    partner_port: int
    server_cert: Path
    server_key: Path
    partner_ca: Path  # CA that signs partners' client certificates
    proxy_secret: str  # PROXY_AUTH_SECRET of the service, sent in X-Proxy-Auth
    max_body: str = "10m"
    face_upload_max: str = "8m"  # FACE_UPLOAD_MAX_BYTES: the body of a face photo upload
    listen_host: str = "127.0.0.1"
    # per client address on the public listener (NGINX_PUBLIC_* settings)
    public_rate_per_s: int = 20
    public_burst: int = 40
    public_connections: int = 20
    # Which listeners this nginx serves: both in one process, or each in its own (then the partner
    # side can be given CPU priority over the public edge: docs/architecture.md "Two worker pools").
    listeners: tuple[str, ...] = ("public", "partner")
    worker_processes: str = "auto"


def _problem_body(status: int, detail: str, code: str | None = None) -> str:
    """A problem document as an nginx string literal; the request id is filled in by nginx."""
    body = {
        "type": f"/problems/{code or PROBLEM_TYPES.get(status, 'error')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "request_id": "$smarthome_request_id",
    }
    text = json.dumps(body, ensure_ascii=True, separators=(",", ":"))
    if "'" in text or "\\" in text:  # would end or escape nginx's string literal
        raise ValueError(f"problem text unfit for nginx: {text}")
    return f"'{text}'"


# name -> (status, detail, code, extra directives)
_PROBLEMS = {
    "bad_request": (400, "The request could not be read.", None, ""),
    "client_certificate": (
        400, "This listener requires a client certificate issued by the partner CA.",
        "client-certificate-required", "",
    ),
    "not_found": (404, "Not found.", None, ""),
    "method_not_allowed": (
        405, "This method is not allowed.", None, f'add_header Allow "{", ".join(ALLOWED_METHODS)}" always;',
    ),
    "too_large": (413, "The request body is too large.", None, ""),
    "too_many_requests": (
        429, "Too many requests from this address; slow down.", None,
        'add_header Retry-After "1" always;\n'
        f"      limit_rate_after 0;\n      limit_rate {REFUSAL_BYTES_PER_S};",
    ),
    "uri_too_long": (414, "The request URI is too long.", "uri-too-long", ""),
    "headers_too_large": (400, "The request headers are too large.", "headers-too-large", ""),
    "server_error": (500, "Internal error; the request id identifies it in our logs.", None, ""),
    "bad_gateway": (502, "The service is not reachable.", None, 'add_header Retry-After "5" always;'),
    "unavailable": (503, "The service is unavailable.", None, 'add_header Retry-After "5" always;'),
    "gateway_timeout": (504, "The service did not answer in time.", None, ""),
}

# Errors nginx raises before it has chosen a location: answered at server level on both listeners.
_REQUEST_ERRORS = """
    error_page 400 @problem_bad_request;
    error_page 405 @problem_method_not_allowed;
    error_page 414 @problem_uri_too_long;
    error_page 429 @problem_too_many_requests;
    error_page 494 @problem_headers_too_large;"""
# Errors inside an API location (body limits, the service down), plus the above again
# (error_page is inherited only by a level that declares none).
_LOCATION_ERRORS = _REQUEST_ERRORS + """
    error_page 413 @problem_too_large;
    error_page 500 @problem_server_error;
    error_page 502 @problem_bad_gateway;
    error_page 503 @problem_unavailable;
    error_page 504 @problem_gateway_timeout;"""


def _problem_locations() -> str:
    blocks = []
    for name, (status, detail, code, extra) in _PROBLEMS.items():
        lines = [
            f"    location @problem_{name} {{",
            f"      default_type {PROBLEM_CONTENT_TYPE};",
            '      add_header X-Request-ID "$smarthome_request_id" always;',
            *([f"      {extra}"] if extra else []),
            f"      return {status} {_problem_body(status, detail, code)};",
            "    }",
        ]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def _proxy(config: ProxyConfig, *, client_cert: bool) -> str:
    """proxy_pass to the listener's pool with the headers it believes over this hop (and only those)."""
    cert = (
        "proxy_set_header X-Client-Cert $ssl_client_escaped_cert;\n"
        "      proxy_set_header X-Client-Verify $ssl_client_verify;"
        if client_cert else
        'proxy_set_header X-Client-Cert "";\n      proxy_set_header X-Client-Verify "";'
    )
    pool = "smarthome_partner" if client_cert else "smarthome_public"
    return f"""proxy_pass http://{pool};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $smarthome_host;
      proxy_set_header X-Proxy-Auth "{config.proxy_secret}";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host "";
      proxy_set_header X-Forwarded-Port "";
      proxy_set_header X-Forwarded-Ssl "";
      proxy_set_header Forwarded "";
      proxy_set_header X-Real-IP "";
      proxy_set_header X-Request-ID $smarthome_request_id;
      {cert}"""


def render(config: ProxyConfig) -> str:
    if not _SAFE_SECRET.match(config.proxy_secret):
        raise ValueError("the proxy secret must be 32-256 characters of [A-Za-z0-9._~+/=-]")
    limits = (config.public_rate_per_s, config.public_burst, config.public_connections)
    if not all(isinstance(value, int) and value > 0 for value in limits):
        raise ValueError(f"the public listener's limits must be positive integers, not {limits}")
    if not config.listeners or set(config.listeners) - set(LISTENERS):
        raise ValueError(f"listeners must be some of {LISTENERS}, not {config.listeners}")
    if not re.fullmatch(r"auto|[1-9][0-9]?", str(config.worker_processes)):
        raise ValueError(f"worker_processes must be `auto` or a small number, not {config.worker_processes!r}")
    tls = f"""
    ssl_certificate {config.server_cert};
    ssl_certificate_key {config.server_key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    ssl_session_cache shared:tls:1m;"""
    temp = "\n".join(
        f"  {name}_temp_path {config.prefix}/{name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    methods = "|".join(ALLOWED_METHODS)
    common = f"""
    access_log {config.prefix}/access.log smarthome_json;
    if ($request_method !~ ^({methods})$) {{ return 405; }}{_REQUEST_ERRORS}
{_problem_locations()}
    location = /metrics {{ return 404; }}"""
    public_server = f"""
  server {{
    listen {config.listen_host}:{config.public_port} ssl;{tls}
    limit_req zone=public_rate burst={config.public_burst} nodelay;
    limit_conn public_connections {config.public_connections};{common}
    location /partner/ {{
      error_page 404 @problem_not_found;
      return 404;
    }}
    location {FACE_UPLOAD_PREFIX} {{
      client_max_body_size {config.face_upload_max};
      client_body_buffer_size {config.face_upload_max};
      client_body_in_file_only off;
      proxy_request_buffering off;{_LOCATION_ERRORS}
      error_page 404 @problem_not_found;
      {_proxy(config, client_cert=False)}
    }}
    location /api/ {{{_LOCATION_ERRORS}
      {_proxy(config, client_cert=False)}
    }}
    location /o/ {{{_LOCATION_ERRORS}
      {_proxy(config, client_cert=False)}
    }}
    location /integration/ {{{_LOCATION_ERRORS}
      {_proxy(config, client_cert=False)}
    }}
    location / {{
      {_proxy(config, client_cert=False)}
    }}
  }}
"""
    partner_server = f"""
  server {{
    listen {config.listen_host}:{config.partner_port} ssl;{tls}
    ssl_verify_client on;
    ssl_client_certificate {config.partner_ca};
    ssl_verify_depth 2;
    error_page 495 496 497 @problem_client_certificate;
    error_page 404 @problem_not_found;{common}
    location / {{{_LOCATION_ERRORS}
      error_page 404 @problem_not_found;
      {_proxy(config, client_cert=True)}
    }}
  }}
"""
    servers = {
        "public": f"""
  upstream smarthome_public {{ server {config.upstream}; keepalive 32; }}
  # per client address on the public listener; over a limit: 429 before any worker is involved
  limit_req_zone $binary_remote_addr zone=public_rate:10m rate={config.public_rate_per_s}r/s;
  limit_conn_zone $binary_remote_addr zone=public_connections:10m;
  limit_req_status 429;
  limit_conn_status 429;
{public_server}""",
        "partner": f"""
  upstream smarthome_partner {{ server {config.partner_upstream}; keepalive 32; }}
{partner_server}""",
    }
    return f"""# generated by core/nginx.py - holds the proxy secret: keep it readable by its owner only
worker_processes {config.worker_processes};
pid {config.prefix}/nginx.pid;
error_log {config.prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  server_tokens off;
{temp}
  client_max_body_size {config.max_body};
  proxy_max_temp_file_size 0;
{_HTTP_MAPS}
  {_ACCESS_LOG_FORMAT}
{"".join(servers[listener] for listener in config.listeners)}}}
"""


def write_config(config: ProxyConfig) -> Path:
    """Write the configuration under `prefix`, mode 0600 (it holds the proxy secret)."""
    config.prefix.mkdir(parents=True, exist_ok=True)
    conf = config.prefix / "nginx.conf"
    descriptor = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(descriptor, "w") as out:
        out.write(render(config))
    return conf


def start(config: ProxyConfig) -> subprocess.Popen:
    """Write the configuration under `prefix` and run nginx in the foreground (caller stops it)."""
    return run(config.prefix, write_config(config))


def run(prefix: Path, conf: Path) -> subprocess.Popen:
    """Check `conf` and run nginx on it in the foreground (caller stops it)."""
    subprocess.run([NGINX, "-t", "-q", "-p", str(prefix), "-c", str(conf)], check=True)
    return subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"])
