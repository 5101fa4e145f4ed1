"""What nginx itself answers and keeps, through the real nginx (core/nginx.py): problem documents for
its own errors on /api/, /partner/ and /o/, no version in Server, face photos never spooled to
disk, and a JSON access log without query strings."""

import json
import os
import secrets
import socket
import ssl
import time
import uuid
from pathlib import Path

import pytest
import requests

from core import nginx
from tests import infra
from tests.nginx_fixtures import get_once_up, proxy_config

pytestmark = pytest.mark.django_db


def tls_socket(port: int, dev_pki, *, client_cert: bool = False) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(dev_pki["ca.pem"]))
    if client_cert:
        context.load_cert_chain(str(dev_pki["partner-client.pem"]), str(dev_pki["partner-client.key"]))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="localhost")


def read_response(sock: ssl.SSLSocket) -> tuple[int, dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def raw(port, dev_pki, request: bytes, *, client_cert=False):
    with tls_socket(port, dev_pki, client_cert=client_cert) as sock:
        sock.sendall(request)
        return read_response(sock)


def assert_problem(status, headers, body, expected_status, type_suffix=None):
    assert status == expected_status, body[:300]
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == expected_status
    assert problem["type"].startswith("/problems/")
    if type_suffix:
        assert problem["type"] == f"/problems/{type_suffix}"
    assert problem["request_id"]
    assert b"nginx" not in body
    assert b"<html" not in body
    return problem


def listeners(proxy):
    """(port, needs a client certificate, path prefixes served there)."""
    return [(proxy.public_port, False, ("/api/v1/vehicles", "/o/token/", "/integration/v1/records")),
            (proxy.partner_port, True, ("/partner/v1/access-decisions", "/o/token/"))]


def test_a_body_over_the_limit_is_a_problem_document(proxy, dev_pki):
    for port, cert, paths in listeners(proxy):
        for path in paths:
            status, headers, body = raw(port, dev_pki, (
                f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                f"Content-Length: {20 * 1024 * 1024}\r\nConnection: close\r\n\r\n"
            ).encode(), client_cert=cert)
            assert_problem(status, headers, body, 413, "payload-too-large")
    face = raw(proxy.public_port, dev_pki, (
        f"POST /api/v1/biometrics/face HTTP/1.1\r\nHost: localhost\r\nContent-Length: {9 * 1024 * 1024}\r\n"
        "Connection: close\r\n\r\n"
    ).encode())
    assert_problem(*face, 413, "payload-too-large")


@pytest.mark.parametrize("method", ["TRACE", "TRACK", "CONNECTX"])
def test_an_undeclared_method_is_405_with_allow(proxy, dev_pki, method):
    for port, cert, paths in listeners(proxy):
        for path in paths:
            status, headers, body = raw(port, dev_pki, (
                f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").encode(), client_cert=cert)
            assert_problem(status, headers, body, 405, "method-not-allowed")
            assert headers["allow"] == ", ".join(nginx.ALLOWED_METHODS)
            assert "TRACE" not in headers["allow"]


def test_the_partner_listener_refuses_a_missing_or_foreign_certificate_with_a_problem(proxy, dev_pki):
    url = f"https://localhost:{proxy.partner_port}/partner/v1/access-decisions"
    ca = str(dev_pki["ca.pem"])
    for cert in (None, (str(dev_pki["rogue-client.pem"]), str(dev_pki["rogue-client.key"]))):
        response = requests.post(url, json={}, cert=cert, verify=ca, timeout=10)
        assert_problem(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                       response.content, 400, "client-certificate-required")
        assert "x5t_s256" not in response.text


def test_the_partner_api_on_the_public_listener_is_a_problem_404(proxy, dev_pki):
    response = requests.get(f"https://localhost:{proxy.public_port}/partner/v1/access-decisions",
                            verify=str(dev_pki["ca.pem"]), timeout=10)
    assert_problem(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                   response.content, 404, "not-found")


def test_nginx_tells_no_version(proxy, dev_pki):
    ca = str(dev_pki["ca.pem"])
    for response in (requests.get(f"https://localhost:{proxy.public_port}/healthz", verify=ca, timeout=10),
                     requests.get(f"https://localhost:{proxy.public_port}/partner/x", verify=ca, timeout=10),
                     requests.get(f"https://localhost:{proxy.partner_port}/healthz", verify=ca, timeout=10)):
        assert response.headers["Server"] == "nginx"
        assert "nginx/" not in response.text


def test_the_service_down_is_a_problem_document(tmp_path, dev_pki):
    """An upstream that does not answer: 502 from nginx, as a problem with Retry-After."""
    config = proxy_config(tmp_path / "nginx", f"127.0.0.1:{infra.free_port()}", dev_pki, secrets.token_urlsafe(32))
    process = nginx.start(config)
    try:
        response = get_once_up(f"https://localhost:{config.public_port}/api/v1/devices", verify=str(dev_pki["ca.pem"]))
        assert_problem(response.status_code, {k.lower(): v for k, v in response.headers.items()},
                       response.content, 502, "bad-gateway")
        assert response.headers["Retry-After"] == "5"
        admin = requests.get(f"https://localhost:{config.public_port}/admin/", verify=str(dev_pki["ca.pem"]),
                             timeout=10)
        assert admin.status_code == 502  # the browser pages keep nginx's own page
    finally:
        process.terminate()
        process.wait(10)


def test_the_access_log_is_json_without_query_strings(proxy, dev_pki):
    ca = str(dev_pki["ca.pem"])
    secret_query = "access_token=tok-" + uuid.uuid4().hex + "&q=Т777ТТ116"
    public = requests.get(f"https://localhost:{proxy.public_port}/api/v1/devices?{secret_query}",
                          headers={"X-Request-ID": "edge-log-1"}, verify=ca, timeout=10)
    generated = requests.get(f"https://localhost:{proxy.public_port}/healthz?{secret_query}",
                             headers={"X-Request-ID": "not a safe id!"}, verify=ca, timeout=10)
    partner = requests.get(f"https://localhost:{proxy.partner_port}/partner/v1/nothing?{secret_query}",
                           cert=(str(dev_pki["partner-client.pem"]), str(dev_pki["partner-client.key"])),
                           verify=ca, timeout=10)
    refused = requests.get(f"https://localhost:{proxy.partner_port}/partner/v1/x?{secret_query}", verify=ca,
                           timeout=10)
    text = (proxy.prefix / "access.log").read_text()
    for leaked in ("tok-", "access_token", "Т777", "%D0%A2777", "?"):
        assert leaked not in text
    lines = [json.loads(line) for line in text.splitlines()]
    by_id = {line["request_id"]: line for line in lines}
    assert by_id["edge-log-1"]["path"] == "/api/v1/devices"
    assert by_id["edge-log-1"]["status"] == public.status_code == 401
    assert by_id["edge-log-1"]["listener"] == str(proxy.public_port)
    # an unsafe caller id is replaced by nginx, and the service uses the same one
    assert by_id[generated.headers["X-Request-ID"]]["path"] == "/healthz"
    assert by_id[partner.headers["X-Request-ID"]]["listener"] == str(proxy.partner_port)
    assert by_id[refused.json()["request_id"]]["status"] == 400
    assert all({"time", "client", "method", "status", "duration_s"} <= set(line) for line in lines)


def nginx_pids(master: int) -> list[int]:
    pids = [master]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(entry.name))
    return pids


def spooled_copies(prefix: Path, master: int, marker: bytes) -> list[str]:
    """Files under nginx's prefix, and files nginx holds open (unlinked temp files included), that hold `marker`."""
    found = []
    for path in prefix.rglob("*"):
        if path.is_file() and path.name != "nginx.conf" and marker in path.read_bytes():
            found.append(str(path))
    for pid in nginx_pids(master):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
                if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
                    with open(fd, "rb") as handle:
                        if marker in handle.read():
                            found.append(target)
            except OSError:
                continue
    return found


@pytest.fixture
def proxy_process(proxy):
    """The running nginx master's pid (the proxy fixture's)."""
    return int((proxy.prefix / "nginx.pid").read_text())


def test_a_slow_face_upload_never_reaches_nginx_temp_files(proxy, proxy_process, dev_pki):
    """A photo sent slowly (as over a phone network) is streamed to the service from memory: at no
    point, and not afterwards, does a file under nginx's temp paths - or any file nginx holds open,
    unlinked ones included - contain its bytes."""
    marker = b"FACE-" + uuid.uuid4().hex.encode()
    photo = (marker + os.urandom(1000)) * 600  # ~600 KB: well above nginx's default 16 KB body buffer
    boundary = "----edge" + uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"partner\"\r\n\r\n1\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"face.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /api/v1/biometrics/face HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer nope\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    with tls_socket(proxy.public_port, dev_pki) as sock:
        sock.sendall(head)
        pieces = [body[i:i + 64 * 1024] for i in range(0, len(body), 64 * 1024)]
        for number, piece in enumerate(pieces):
            sock.sendall(piece)
            time.sleep(0.15)
            if number in (2, len(pieces) // 2, len(pieces) - 2):
                assert spooled_copies(proxy.prefix, proxy_process, marker) == [], f"after piece {number}"
        status, _, _ = read_response(sock)
    assert status in (400, 401, 403)
    assert spooled_copies(proxy.prefix, proxy_process, marker) == []
    assert "buffered to a temporary file" not in (proxy.prefix / "error.log").read_text()
