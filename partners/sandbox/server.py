"""The sandbox's two listeners: the partner API over HTTPS with mTLS, and the control API.

- Partner API: ``ssl.PROTOCOL_TLS_SERVER``, TLS 1.2 minimum, client certificate required and
  verified against ``ca.pem`` only (a certificate from any other CA fails the handshake);
  server certificate ``sandbox-server.pem``. The TLS handshake runs in the connection's own
  thread, so a slow or failing client never blocks the accept loop. The listener can be taken
  down (socket closed, open connections cut) and brought back up on the same port.
- Control API: plain HTTP bound to 127.0.0.1.

Each request line and status is logged to stderr; headers and bodies never are.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import ssl
import sys
import threading
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from joserfc.jwk import ECKey, RSAKey

from partners.face_jwe import DEFAULT_FACE_PHOTO_MAX_BYTES, max_compact_length

from .app import PartnerApp
from .control_api import ControlApp
from .faces import FaceKeys
from .keyring import PartnerKeyring
from .oauth import ClientRegistry, TokenAuthority
from .routing import Reply, Request
from .smarthome_link import SmarthomeLink

CONTROL_HOST = "127.0.0.1"
REQUIRED_FILES = (
    "ca.pem",
    "sandbox-server.pem",
    "sandbox-server.key",
    "sandbox-jwt.key",
    "partner-jwe.key",
    "partner-jwe-rsa.key",
    "partner-client.pem",
    "partner-client.key",
)
HANDSHAKE_TIMEOUT_S = 10
IDLE_TIMEOUT_S = 60
MAX_BODY_BYTES = 16 * 1024 * 1024  # raised to fit the largest face photo JWE if that is larger
BODY_OVERHEAD_BYTES = 64 * 1024  # the JSON around a face photo's JWE
POLL_INTERVAL_S = 0.05


@dataclass(frozen=True)
class SandboxConfig:
    certs_dir: Path
    clients: dict[str, str]
    host: str = "127.0.0.1"
    port: int = 8443
    control_port: int = 8444
    token_ttl_s: int = 300
    face_photo_max_bytes: int = DEFAULT_FACE_PHOTO_MAX_BYTES


def tls_context(certs_dir: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certs_dir / "sandbox-server.pem", certs_dir / "sandbox-server.key")
    context.load_verify_locations(cafile=certs_dir / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class SandboxServer:
    """Both listeners of one sandbox partner, built from `config`; `start()` binds and serves."""

    def __init__(self, config: SandboxConfig):
        certs = Path(config.certs_dir)
        missing = [name for name in REQUIRED_FILES if not (certs / name).exists()]
        if missing:
            hint = f"create them with: manage.py make_dev_certs --out {certs}"
            raise FileNotFoundError(f"missing in {certs}: {', '.join(missing)} ({hint})")
        self.partner = PartnerApp(
            clients=ClientRegistry(config.clients),
            tokens=TokenAuthority((certs / "sandbox-jwt.key").read_bytes(), config.token_ttl_s),
            face_keys=FaceKeys(
                (certs / "partner-jwe.key").read_bytes(), (certs / "partner-jwe-rsa.key").read_bytes(),
                max_photo_bytes=config.face_photo_max_bytes,
            ),
        )
        max_body = max(MAX_BODY_BYTES, max_compact_length(config.face_photo_max_bytes) + BODY_OVERHEAD_BYTES)
        self.listener = PartnerListener(config.host, config.port, tls_context(certs), self.partner, max_body)
        self.link = SmarthomeLink(
            self.partner.state, (certs / "partner-client.pem", certs / "partner-client.key"), certs / "ca.pem"
        )
        self.keyring = PartnerKeyring(
            self.partner.state, self.link, self.partner.clients,
            [ECKey.import_key((certs / "partner-jwe.key").read_bytes()),
             RSAKey.import_key((certs / "partner-jwe-rsa.key").read_bytes())],
        )
        self._control_address = (CONTROL_HOST, config.control_port)
        self._control_server: _HTTPServer | None = None

    def start(self) -> None:
        self.listener.set_down(False)
        control = ControlApp(self.partner, self.listener, self.link, self.keyring)
        self._control_server = _HTTPServer(self._control_address, control)
        _serve_in_thread(self._control_server)

    def stop(self) -> None:
        self.listener.set_down(True)
        if self._control_server is not None:
            self._control_server.shutdown()
            self._control_server.server_close()

    @property
    def base_url(self) -> str:
        return f"https://{_url_host(self.listener.host)}:{self.listener.port}"

    @property
    def control_url(self) -> str:
        assert self._control_server is not None, "not started"
        return f"http://{CONTROL_HOST}:{self._control_server.server_port}"


class PartnerListener:
    """The partner API's TLS listener; `set_down(True)` closes it, `set_down(False)` re-binds."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, app: PartnerApp,
                 max_body_bytes: int = MAX_BODY_BYTES):
        self.host = host
        self.port = port
        self._context = context
        self._app = app
        self._max_body_bytes = max_body_bytes
        self._server: _HTTPServer | None = None
        self._lock = threading.Lock()

    def set_down(self, down: bool) -> None:
        with self._lock:
            if down and self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server.drop_connections()
                self._server = None
            elif not down and self._server is None:
                self._server = _HTTPServer((self.host, self.port), self._app, self._context)
                self._server.max_body_bytes = self._max_body_bytes
                # Port 0 asks for a free port once; every later re-bind reuses the one we got.
                self.port = self._server.server_port
                _serve_in_thread(self._server)


class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server for one app; with an SSL context, HTTPS with the handshake per thread."""

    daemon_threads = True
    block_on_close = False
    max_body_bytes = MAX_BODY_BYTES

    def __init__(self, address: tuple[str, int], app, context: ssl.SSLContext | None = None):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        self.ssl_context = context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN; skip that DNS lookup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request: socket.socket, client_address) -> None:
        if self.ssl_context is not None:
            request.settimeout(HANDSHAKE_TIMEOUT_S)
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as error:
                reason = getattr(error, "reason", None) or error
                _log(f"TLS handshake with {client_address[0]} failed: {reason}")
                return
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)
            request.close()

    def drop_connections(self) -> None:
        """Cut every open connection, as a partner going down would."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # The plain socket's shutdown: it wakes the thread blocked on this connection
            # without tearing down the SSL object that thread is using.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(connection, socket.SHUT_RDWR)

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            _log(f"connection from {client_address[0]} ended: {error}")
        else:
            super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sandbox-partner"
    timeout = IDLE_TIMEOUT_S
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        request = self._read_request()
        if request is None:
            return
        try:
            reply = self.server.app.handle(request)
        except Exception:
            traceback.print_exc()
            reply = Reply(500, {"error": "internal_error"})
        if reply is None:
            self.close_connection = True
            return
        self._send(reply)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _read_request(self) -> Request | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(Reply(411, {"error": "length_required"}), close=True)
            return None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= self.server.max_body_bytes:
            self._send(Reply(413 if length > 0 else 400, {"error": "invalid_request"}), close=True)
            return None
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        tls = isinstance(self.connection, ssl.SSLSocket)
        cert = self.connection.getpeercert(binary_form=True) if tls else None
        return Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            client_cert_der=cert,
        )

    def _send(self, reply: Reply, *, close: bool = False) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        if reply.status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:
        _log(f"{self.address_string()} {format % args}")


def _serve_in_thread(server: _HTTPServer) -> None:
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL_S}, daemon=True
    ).start()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _log(message: str) -> None:
    print(f"sandbox: {message}", file=sys.stderr, flush=True)
