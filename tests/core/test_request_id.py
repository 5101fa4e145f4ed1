import pytest

from tests.core.log_capture import captured_json_logs

pytestmark = pytest.mark.django_db


def test_caller_request_id_is_echoed_and_logged(client):
    with captured_json_logs() as lines:
        response = client.get("/healthz", HTTP_X_REQUEST_ID="app-7f3a.42")
    assert response["X-Request-ID"] == "app-7f3a.42"
    access = [line for line in lines if line.get("logger") == "smarthome.request"]
    assert len(access) == 1
    assert access[0]["request_id"] == "app-7f3a.42"
    assert access[0]["route"] == "healthz"
    assert access[0]["method"] == "GET"
    assert access[0]["status"] == 200
    assert access[0]["duration_ms"] >= 0
    assert access[0]["actor"] == "-"


def test_request_id_is_generated_when_absent(client):
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert len(first) == 32
    assert first != second


@pytest.mark.parametrize("bad", ["has spaces", "x" * 65, "<script>", "a\nb"])
def test_unsafe_request_ids_are_replaced(client, bad):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=bad)
    assert response["X-Request-ID"] != bad
    assert len(response["X-Request-ID"]) == 32


def test_route_pattern_not_concrete_path_is_logged(client):
    with captured_json_logs() as lines:
        client.get("/api/v1/audit/does-not-exist/12345")
    raw = lines[-1]["_raw"]
    assert "12345" not in raw
