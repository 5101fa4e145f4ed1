"""No query string reaches a log line, whichever process writes it; our own identifiers survive the redactor.

Query strings carry what people search for in the admin (plates, surnames) and, from careless
clients, tokens (`?access_token=` is refused with 401 - and used to be logged).
"""

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from core.observability.logging import REDACTED, redact_text
from tests import infra
from tests.core.log_capture import captured_json_logs

ROOT = Path(__file__).resolve().parents[2]
SECRET_QUERY = "access_token=tok-{}&q=Иванов"

pytestmark = [pytest.mark.urls("tests.core.problem_urls"), pytest.mark.django_db]


def secret_query() -> tuple[str, str]:
    marker = uuid.uuid4().hex[:12]
    return marker, SECRET_QUERY.format(marker)


def test_django_error_lines_carry_no_query_string(client):
    """django.request's error line passes the request object; its repr holds the raw query string."""
    marker, query = secret_query()
    with captured_json_logs() as lines:
        client.raise_request_exception = False
        assert client.get(f"/api/v1/_test/crash?{query}").status_code == 500
        assert client.get(f"/admin/access/vehicle/?{query}&x=Т777ТТ116").status_code == 302
        assert client.get(f"/api/v1/no-such-thing?{query}").status_code == 404
    raw = lines[-1]["_raw"]
    errors = [line for line in lines[:-1] if line["logger"] == "django.request"]
    assert errors
    assert any(line.get("request") == "<WSGIRequest: GET '/api/v1/_test/crash'>" for line in errors)
    for leaked in (marker, "access_token=tok", "Иванов", "Т777ТТ116"):
        assert leaked not in raw


@pytest.mark.parametrize(("text", "expected"), [
    ("<WSGIRequest: GET '/admin/access/vehicle/?q=Т777ТТ116'>",
     f"<WSGIRequest: GET '/admin/access/vehicle/?{REDACTED}'>"),
    ('"GET /api/v1/me?access_token=abc HTTP/1.1" 401 58', f'"GET /api/v1/me?{REDACTED} HTTP/1.1" 401 58'),
    ("redirect to https://smarthome.example.ru/o/authorize/?code=x&state=y",
     f"redirect to https://smarthome.example.ru/o/authorize/?{REDACTED}"),
    ("Really? Yes.", "Really? Yes."),
])
def test_query_strings_are_redacted_in_any_text(text, expected):
    assert redact_text(text) == expected


def test_our_identifiers_are_not_mangled():
    """Celery task ids are UUIDs, request ids and fingerprints long hex: parts of them used to look like
    plates (`5678-ab12`) or phone numbers and came out as [REDACTED]."""
    for _ in range(5000):
        task_id = str(uuid.uuid4())
        request_id = uuid.uuid4().hex
        text = f"Task access.tasks.push[{task_id}] succeeded; request {request_id}"
        assert redact_text(text) == text
    # personal data next to an identifier is still masked
    masked = redact_text(f"plate А123ВС77 task {uuid.uuid4()} phone 89161234567")
    assert "А123ВС77" not in masked
    assert "89161234567" not in masked


def wait_for(url: str, timeout_s: float = 30) -> None:
    infra.wait_for_http(url, timeout_s=timeout_s)


def run_server(args: list[str], env: dict, url: str):
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(f"{url}/healthz")
    except Exception:
        process.kill()
        raise
    return process


def stop(process) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=20)
    return output


def server_env(tmp_path, **extra) -> dict:
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return {**base, "DJANGO_SETTINGS_MODULE": "smarthome.settings", "SMARTHOME_VAR_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "CACHE_URL": "locmemcache://", **extra}


def requests_with_secrets(url: str, marker_query: str) -> None:
    for path in ("/api/v1/me", "/api/v1/no-such-thing", "/healthz"):
        requests.get(f"{url}{path}?{marker_query}", timeout=10)


@pytest.mark.slow
def test_the_dev_server_prints_no_query_string(tmp_path):
    """`make run` serves with runserver; its access lines (every 4xx went to stderr) held the raw request line."""
    port = infra.free_port()
    url = f"http://127.0.0.1:{port}"
    process = run_server([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                         server_env(tmp_path), url)
    marker, query = secret_query()
    requests_with_secrets(url, query)
    time.sleep(0.5)
    output = stop(process)
    assert "/api/v1/no-such-thing" in output or '"status": 404' in output  # the requests were logged (as JSON)
    for leaked in (marker, "access_token", "Иванов", "%D0%98"):
        assert leaked not in output


@pytest.mark.slow
def test_gunicorns_access_log_is_json_without_query_strings(tmp_path):
    port = infra.free_port()
    url = f"http://127.0.0.1:{port}"
    process = run_server([sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1"],
                         server_env(tmp_path, GUNICORN_ACCESS_LOG="-"), url)
    marker, query = secret_query()
    requests_with_secrets(url, query)
    quoted = requests.get(f'{url}/api/v1/a"b', timeout=10)  # a quote in the path keeps the line valid JSON
    time.sleep(0.5)
    output = stop(process)
    for leaked in (marker, "access_token", "Иванов", "%D0%98"):
        assert leaked not in output
    access = [json.loads(line) for line in output.splitlines() if '"gunicorn.access"' in line]
    paths = {line["path"]: line for line in access}
    assert paths["/api/v1/me"]["status"] == 401
    assert paths["/healthz"]["status"] == 200
    assert paths['/api/v1/a"b']["status"] == quoted.status_code
    assert paths["/api/v1/me"]["request_id"]
