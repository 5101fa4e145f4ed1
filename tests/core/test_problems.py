"""Every error on /api/ and /partner/ is an RFC 9457 problem document, never an HTML page."""

import json

import pytest
from django.core.cache import cache
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.problem_urls")]

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


def assert_problem(response, status: int, type_slug: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["type"] == f"/problems/{type_slug}"
    assert body["request_id"] == response["X-Request-ID"]
    return body


def test_400_lists_field_errors(client):
    response = client.post(
        "/api/v1/_test/echo",
        data=json.dumps({"name": "far too long", "nested": {"a": "x"}}),
        content_type="application/json",
    )
    body = assert_problem(response, 400, "validation-error")
    fields = {error["field"]: error for error in body["errors"]}
    assert set(fields) == {"name", "nested.a"}
    assert fields["name"]["code"] == "max_length"


def test_400_for_malformed_json(client):
    response = client.post("/api/v1/_test/echo", data="{not json", content_type="application/json")
    body = assert_problem(response, 400, "validation-error")
    assert "JSON" in body["detail"]


def test_401_names_the_scheme(client):
    response = client.get("/api/v1/_test/secret")
    assert_problem(response, 401, "not-authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_403(client):
    assert_problem(client.get("/api/v1/_test/forbidden"), 403, "permission-denied")


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/partner/v1/no-such-thing", "/api/v2/x"])
def test_404_for_unknown_urls(client, path):
    assert_problem(client.get(path), 404, "not-found")


def test_404_outside_the_apis_stays_html(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_405_lists_allowed_methods(client):
    response = client.delete("/api/v1/_test/echo")
    assert_problem(response, 405, "method-not-allowed")
    assert "POST" in response["Allow"]


def test_413_before_the_view_reads_the_body(client, settings):
    settings.REQUEST_BODY_MAX_BYTES = 100
    response = client.post("/api/v1/_test/echo", data=json.dumps({"name": "x" * 500}), content_type="application/json")
    assert_problem(response, 413, "payload-too-large")


def test_415_for_other_media_types(client):
    response = client.post("/api/v1/_test/echo", data="name=a", content_type="text/plain")
    assert_problem(response, 415, "unsupported-media-type")


def test_429_with_retry_after(client):
    cache.clear()
    assert client.get("/api/v1/_test/throttled").status_code == 200
    response = client.get("/api/v1/_test/throttled")
    assert_problem(response, 429, "rate-limited")
    assert int(response["Retry-After"]) > 0


def test_500_is_a_problem_without_internals():
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/_test/crash")
    body = assert_problem(response, 500, "server-error")
    assert "boom" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert body["detail"].startswith("Internal error")
