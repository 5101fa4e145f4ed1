"""What the OpenAPI schema at /api/schema/ declares about every operation: its security, the
problems it can answer, the headers, and the input rules the server enforces (the schemathesis
run, tests/core/test_schemathesis.py, holds the server to all of it)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client

from access.plates import PLATE_SPELLING
from access.services.opening import IDEMPOTENCY_KEY
from core.auth.oauth_scopes import PARTNER_SCOPES, RESIDENT_SCOPES, SERVICE_SCOPES

pytestmark = pytest.mark.django_db

API_PREFIXES = ("/api/v1/", "/partner/v1/")
METHODS = ("get", "post", "put", "patch", "delete")
OAUTH_SCHEMES = {"residentApp": RESIDENT_SCOPES, "serviceClient": SERVICE_SCOPES, "partnerClient": PARTNER_SCOPES}
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, item in schema["paths"].items():
        if path.startswith(API_PREFIXES):
            for method in METHODS:
                if method in item:
                    yield path, method, item[method]


def resolve(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def request_schemas(schema, operation):
    for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
        yield media_type, resolve(schema, content["schema"])


def test_the_partner_api_is_in_the_schema(schema):
    """If the partner API gets its own URL conf, SPECTACULAR_SETTINGS["SERVE_URLCONF"] lists both."""
    paths = set(schema["paths"])
    assert {"/partner/v1/access-decisions", "/partner/v1/events"} <= paths
    assert any(path.startswith("/api/v1/") for path in paths)


def test_the_security_schemes_are_the_oauth2_flows_with_their_scopes(schema):
    schemes = schema["components"]["securitySchemes"]
    resident = schemes["residentApp"]["flows"]
    assert set(resident) == {"authorizationCode"}
    assert set(resident["authorizationCode"]["scopes"]) == set(RESIDENT_SCOPES)
    assert resident["authorizationCode"]["authorizationUrl"] == "/o/authorize/"
    assert "PKCE" in schemes["residentApp"]["description"]
    assert set(schemes["partnerClient"]["flows"]) == {"clientCredentials"}
    assert set(schemes["partnerClient"]["flows"]["clientCredentials"]["scopes"]) == set(PARTNER_SCOPES)
    assert "mTLS" in schemes["partnerClient"]["description"]
    service = schemes["serviceClient"]["flows"]
    assert set(service) == {"authorizationCode", "clientCredentials"}
    assert all(set(flow["scopes"]) == set(SERVICE_SCOPES) for flow in service.values())
    assert schemes["bearerToken"] == {"type": "http", "scheme": "bearer",
                                      "description": schemes["bearerToken"]["description"]}


def test_every_operation_declares_its_security(schema):
    for path, method, operation in operations(schema):
        security = operation.get("security")
        assert security, (method, path)
        if security == [{}]:
            continue  # public: the receipt and audit keys
        oauth = [requirement for requirement in security if set(requirement) & set(OAUTH_SCHEMES)]
        assert oauth, (method, path, security)
        for requirement in oauth:
            (scheme,) = set(requirement) & set(OAUTH_SCHEMES)
            assert set(requirement[scheme]) <= set(OAUTH_SCHEMES[scheme]), (method, path, requirement)
            assert requirement["bearerToken"] == []
        expected = "partnerClient" if path.startswith("/partner/") else None
        if expected:
            assert {next(iter(set(r) & set(OAUTH_SCHEMES))) for r in oauth} == {expected}


@pytest.mark.parametrize(("path", "method", "requirements"), [
    ("/api/v1/devices", "get", [{"residentApp": ["devices:read"]}]),
    ("/api/v1/devices/{device_id}/open", "post", [{"residentApp": ["doors:open"]}, {"residentApp": ["barriers:open"]}]),
    ("/api/v1/me", "get", [{"residentApp": []}]),
    ("/api/v1/audit/export", "get", [{"serviceClient": ["audit:export"]}, {"cookieAuth": []}]),
    ("/partner/v1/access-decisions", "post", [{"partnerClient": ["access:decide"]}]),
    ("/partner/v1/events", "post", [{"partnerClient": ["events:write"]}]),
])
def test_scopes_per_operation(schema, path, method, requirements):
    security = [{k: v for k, v in requirement.items() if k != "bearerToken"}
                for requirement in schema["paths"][path][method]["security"]]
    assert security == requirements


def test_every_operation_declares_the_problems_it_implies(schema):
    for path, method, operation in operations(schema):
        responses = operation["responses"]
        declared = set(responses)
        where = (method, path)
        if operation["security"] != [{}]:
            assert {"401", "403"} <= declared, where
            assert "WWW-Authenticate" in responses["401"]["headers"], where
        if method in ("post", "put", "patch"):
            assert {"400", "413", "415"} <= declared, where
        if "{" in path:
            assert "404" in declared, where
        if any(parameter["in"] == "query" for parameter in operation.get("parameters", [])):
            assert "400" in declared, where
        if path.startswith("/api/v1/") and operation["security"] != [{}] and not path.startswith("/api/v1/audit/") \
                and path != "/api/v1/me":
            assert "429" in declared, where
            if method != "get":
                assert "503" in declared, where
        for status in ("429", "503"):
            if status in responses:
                assert responses[status]["headers"]["Retry-After"]["required"] is True, where
        for status, response in responses.items():
            assert response["headers"]["X-Request-ID"]["required"] is True, (where, status)
            if status >= "400":
                assert set(response["content"]) == {PROBLEM}, (where, status)
                assert response["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_request_bodies_refuse_unknown_keys(schema):
    for path, method, operation in operations(schema):
        for media_type, body in request_schemas(schema, operation):
            assert body.get("additionalProperties") is False, (method, path, media_type)
            for name, prop in body.get("properties", {}).items():
                nested = resolve(schema, prop)
                if nested.get("type") == "object" and nested.get("properties") and name != "data":
                    assert nested.get("additionalProperties") is False, (method, path, name)


def _text_inputs(schema):
    for path, method, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["schema"].get("type") == "string":
                yield (method, path, parameter["in"], parameter["name"]), parameter["schema"]
        for _, body in request_schemas(schema, operation):
            for name, prop in body.get("properties", {}).items():
                nested = resolve(schema, prop)
                for inner, inner_prop in nested.get("properties", {}).items():
                    if inner_prop.get("type") == "string":
                        yield (method, path, "body", f"{name}.{inner}"), inner_prop
                if prop.get("type") == "string":
                    yield (method, path, "body", name), prop


def test_no_text_input_admits_a_control_character(schema):
    """Every string the API reads is an enum, a format (date-time, binary) or a pattern - and no
    pattern lets NUL, ESC or C1 through (the character rule, core/api/serializers.py)."""
    seen = 0
    for where, prop in _text_inputs(schema):
        if "enum" in prop or prop.get("format") in ("date-time", "binary"):
            continue
        assert "pattern" in prop, where
        for bad in ("a\x00b", "a\x1bb", "a\x85b"):
            assert not re.search(prop["pattern"], bad), (where, bad)
        seen += 1
    assert seen >= 10


def test_the_rules_the_server_enforces_are_declared(schema):
    components = schema["components"]["schemas"]
    assert components["VehicleCreateRequest"]["properties"]["plate"]["pattern"] == PLATE_SPELLING.pattern
    assert components["GuestPassCreateRequest"]["properties"]["plate"]["pattern"] == PLATE_SPELLING.pattern

    open_operation = schema["paths"]["/api/v1/devices/{device_id}/open"]["post"]
    (key,) = [p for p in open_operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert (key["in"], key["required"], key["schema"]["pattern"]) == ("header", True, IDEMPOTENCY_KEY.pattern)

    offer = components["VideoSessionRequestRequest"]["properties"]["sdp_offer"]
    assert offer["pattern"].startswith("^v=0")
    assert offer["maxLength"] == 20000
    assert re.search(offer["pattern"], "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\n")

    history = schema["paths"]["/api/v1/history"]["get"]
    assert "`until` must be after `since`" in history["description"]
    assert {p["name"] for p in history["parameters"]} >= {"since", "until", "device_id", "page", "page_size"}

    face = schema["paths"]["/api/v1/biometrics/face"]["post"]["requestBody"]
    assert set(face["content"]) == {"multipart/form-data"}
    form = face["content"]["multipart/form-data"]
    photo = resolve(schema, form["schema"])["properties"]["photo"]
    assert (photo["format"], photo["minLength"], photo["maxLength"]) == ("binary", 1, settings.FACE_PHOTO_MAX_BYTES)
    assert form["encoding"]["photo"]["contentType"] == "image/jpeg, image/png"
    assert face["required"] is True


def test_links_lead_from_a_created_object_to_what_acts_on_it(schema):
    created = schema["paths"]["/api/v1/guest-passes"]["post"]["responses"]["201"]["links"]
    by_id = {"pass_id": "$response.body#/id"}
    assert created == {
        "guest_passes_retrieve": {"operationId": "guest_passes_retrieve", "parameters": by_id},
        "guest_passes_revoke": {"operationId": "guest_passes_revoke", "parameters": by_id},
    }
    listed = schema["paths"]["/api/v1/devices"]["get"]["responses"]["200"]["links"]
    assert listed["devices_open"]["parameters"] == {"device_id": "$response.body#/0/id"}
