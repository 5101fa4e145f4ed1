"""The input rules (core/api/serializers.py) on every operation of the URL conf.

Operations are read from the OpenAPI schema the URL conf produces, so a new endpoint is covered
without touching this file - or fails here until it follows the rules (or, if its path parameters
are new, until `path_values` knows where its objects come from):

- a JSON body with a key the operation does not declare -> 400 naming the key (`unknown_field`);
  an operation that takes no body refuses any key;
- a NUL, another control character or a lone surrogate in any string of a body or a query
  parameter -> 400 naming the field (`forbidden_character`); TAB/LF/CR only where a field allows
  them (the SDP offer);
- and nothing changes: no audit event, no outbox message, nothing reaches the partner.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from dataclasses import dataclass, field

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from drf_spectacular.settings import spectacular_settings
from rest_framework.parsers import MultiPartParser
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from access.models import Notification
from audit.models import AuditEvent
from core.api.schema import api_schema
from core.security.roles import COMPLIANCE_OFFICER
from partners.models import InboundWebhook, OutboxMessage
from smarthome.settings.pools import PARTNER
from tests import factories
from tests.access.api.conftest import ALL_SCOPES, estate, make_token  # noqa: F401 - fixtures
from tests.access.decision_scene import build_scene
from tests.partners import partner_api
from tests.partners.outbox_fixtures import client_settings, sandbox_partner  # noqa: F401 - fixtures

pytestmark = [pytest.mark.django_db, pytest.mark.partner]
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller

API_PREFIXES = ("/api/v1/", "/partner/v1/", "/integration/v1/")
WEBHOOKS = "/partner/v1/events"
UNKNOWN = "zz_not_in_the_contract"
BAD_TEXTS = {"NUL": "a\x00b", "ESC": "a\x1bb", "C1": "a\x85b", "surrogate": "a\ud800b", "newline": "a\nb"}
# Only a JSON escape ("\ud800") can carry a lone surrogate; URLs and forms are bytes (UTF-8).
BAD_FORM_TEXTS = {name: text for name, text in BAD_TEXTS.items() if name != "surrogate"}


def _operations() -> list[tuple[str, str, dict]]:
    schema = api_schema()
    found = []
    for path, item in schema["paths"].items():
        if not path.startswith(API_PREFIXES):
            continue
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                found.append((path, method, operation))
    return sorted(found, key=lambda entry: (entry[0], entry[1]))


def _drf_routes() -> set[str]:
    """Every DRF view the URL conf serves under the API prefixes, as schema-style paths."""
    routes = set()

    def walk(patterns, prefix):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and hasattr(pattern.callback, "cls"):
                path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
                routes.add(path.replace("{pk}", "{id}"))  # drf-spectacular names `pk` `id`

    for urlconf in spectacular_settings.SERVE_URLCONF:  # both pools
        walk(get_resolver(urlconf).url_patterns, "")
    return {route for route in routes if route.startswith(API_PREFIXES)}


OPERATIONS = _operations()
WRITES = [(path, method, op) for path, method, op in OPERATIONS if method in ("post", "put", "patch")]
QUERIES = [(path, op) for path, method, op in OPERATIONS
           if method == "get" and any(p["in"] == "query" for p in op.get("parameters", []))]


def test_every_api_view_is_in_the_schema_so_this_file_covers_it():
    assert _drf_routes() <= {path for path, _, _ in OPERATIONS}


# --- the world every operation is called in -------------------------------------------------------


@dataclass
class World:
    resident_client: APIClient
    compliance_client: APIClient
    partner: object
    scene: object
    ids: dict = field(default_factory=dict)
    sandbox: object = None
    integration_client: APIClient = None

    def client_for(self, path: str):
        if path.startswith("/partner/"):
            return None  # partner calls go through partner_api's caller (certificate + token headers)
        if path.startswith("/api/v1/audit/"):
            return self.compliance_client
        if path.startswith("/integration/"):
            return self.integration_client
        return self.resident_client


@pytest.fixture
def world(estate, partner_caller, settings):  # noqa: F811
    from consent.services import consent_text_publish
    from tests.masterdata.conftest import make_integration

    resident = estate.resident
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(resident.user, ALL_SCOPES + ' consent:write')}")
    vehicle = factories.vehicle(resident_=resident)
    response = client.post("/api/v1/guest-passes", {"device_id": estate.barrier.pk, "plate": "В456ОР199"},
                           format="json")
    assert response.status_code == 201, response.content
    guest_pass = response.json()["id"]
    notification = Notification.objects.create(resident=resident, kind="door_opened", device=estate.door,
                                               occurred_at=timezone.now(), data={})
    text = consent_text_publish(version=f"v-{uuid.uuid4().hex[:6]}", body="Согласие на обработку биометрии")
    consent = client.post("/api/v1/consents", {"partner": estate.partner.pk, "text_sha256": text.sha256},
                          format="json")
    assert consent.status_code == 201, consent.content
    officer = factories.staff_user(company_=resident.company, role=COMPLIANCE_OFFICER)
    compliance = APIClient()
    compliance.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(officer, 'audit:export')}")
    integration = make_integration(settings, "tenant-core-rules", ["TC-RULES"])
    assert integration.results([{"type": "company", "id": "TC-RULES", "version": 1, "name": "УК Правила"}])
    return World(
        resident_client=client, compliance_client=compliance, partner=estate.partner, scene=build_scene(partner_caller),
        sandbox=estate.sandbox, integration_client=integration.api,
        ids={"door": estate.door.pk, "camera": estate.camera.pk, "vehicle_id": vehicle.pk, "pass_id": guest_pass,
             "notification_id": notification.pk, "consent": consent.json()["id"], "text_sha256": text.sha256},
    )


def path_values(world: World, path: str) -> str:
    """`path` with its parameters filled with the world's own objects (the caller's, so the view
    gets as far as reading the body)."""
    values = dict(world.ids)
    values["device_id"] = values["camera"] if path.endswith("video-sessions") else values["door"]
    if path.startswith("/api/v1/consents/"):
        values["id"] = values["consent"]
    names = re.findall(r"{(\w+)}", path)
    missing = [name for name in names if name not in values]
    assert not missing, f"{path}: tell path_values() which object {missing} names"
    return path.format(**{name: values[name] for name in names})


def example_body(world: World, path: str, method: str) -> dict:
    """A body each operation accepts as far as its validation goes (then one rule is broken in it)."""
    bodies = {
        ("/api/v1/vehicles", "post"): {"plate": "Е789КХ50", "label": "car"},
        ("/api/v1/vehicles/{vehicle_id}", "patch"): {"label": "car"},
        ("/api/v1/guest-passes", "post"): {"device_id": world.ids["door"], "plate": "Е789КХ50", "label": "guest"},
        ("/api/v1/devices/{device_id}/video-sessions", "post"): {"sdp_offer": "v=0"},
        ("/api/v1/consents", "post"): {"partner": world.partner.pk, "text_sha256": world.ids["text_sha256"]},
        ("/integration/v1/reconciliation", "post"): {"building": "B-RULES", "records": []},
        ("/partner/v1/access-decisions", "post"): {
            "device_ref": world.scene.device.partner_device_ref,
            "credential": {"type": "plate", "token": world.scene.plate_token},
            "request_id": "req-rules-1", "observed_at": timezone.now().isoformat(),
        },
    }
    return bodies.get((path, method), {})


def call(world: World, path: str, method: str, body, *, multipart: bool = False):
    url = path_values(world, path)
    headers = {"HTTP_IDEMPOTENCY_KEY": f"rules-{uuid.uuid4().hex[:12]}"}
    if path.startswith("/partner/"):
        caller = world.scene.caller
        return getattr(caller.client, method)(url, json.dumps(body), content_type="application/json", secure=True,
                                              **caller.headers(), **headers)
    client = world.client_for(path)
    if multipart:
        return getattr(client, method)(url, body, format="multipart", **headers)
    return getattr(client, method)(url, json.dumps(body), content_type="application/json", **headers)


def snapshot(world: World) -> tuple:
    return (AuditEvent.objects.count(), OutboxMessage.objects.count(), InboundWebhook.objects.count(),
            len(world.sandbox.control.log()["entries"]))


def fields_named(response, code: str) -> set[str]:
    return {error["field"] for error in response.json().get("errors", []) if error["code"] == code}


def _takes_multipart(path: str) -> bool:
    urlconf = PARTNER.urlconf if path.startswith("/partner/") else None  # the partner pool's URL map
    match = get_resolver(urlconf).resolve(re.sub(r"{\w+}", "1", path))
    return MultiPartParser in getattr(match.func.cls, "parser_classes", ())


def _string_leaves(body: dict, prefix: str = ""):
    for key, value in body.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            yield from _string_leaves(value, name)
        elif isinstance(value, str):
            yield name


def _with(body: dict, dotted: str, value) -> dict:
    copy = json.loads(json.dumps(body))
    target = copy
    *parents, last = dotted.split(".")
    for parent in parents:
        target = target[parent]
    target[last] = value
    return copy


# --- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "method"), [(p, m) for p, m, _ in WRITES if p != WEBHOOKS])
def test_an_unknown_key_is_refused_naming_it(world, path, method):
    before = snapshot(world)
    body = {**example_body(world, path, method), UNKNOWN: "x"}
    response = call(world, path, method, body, multipart=_takes_multipart(path))
    assert response.status_code == 400, response.content
    assert response.json()["type"] == "/problems/validation-error"
    assert UNKNOWN in fields_named(response, "unknown_field")
    assert snapshot(world) == before


def _string_cases():
    cases = []
    for path, method, _ in WRITES:
        if path == WEBHOOKS:
            continue
        cases.append((path, method))
    return cases


@pytest.mark.parametrize(("path", "method"), _string_cases())
def test_control_characters_in_a_body_are_refused_naming_the_field(world, path, method):
    body = example_body(world, path, method)
    leaves = list(_string_leaves(body)) or [None]  # no body: the key itself carries the character
    multipart = _takes_multipart(path)
    for bad, text in (BAD_FORM_TEXTS if multipart else BAD_TEXTS).items():
        for leaf in leaves:
            if leaf == "sdp_offer" and bad == "newline":
                continue  # an SDP offer is lines: allowed there (test below)
            before = snapshot(world)
            broken = {f"key{text}": "x"} if leaf is None else _with(body, leaf, text)
            response = call(world, path, method, broken, multipart=multipart)
            assert response.status_code == 400, (bad, leaf, response.content)
            if leaf is not None:
                assert leaf in fields_named(response, "forbidden_character"), (bad, leaf, response.json())
            assert snapshot(world) == before


@pytest.mark.parametrize(("path", "operation"), QUERIES, ids=[p for p, _ in QUERIES])
def test_control_characters_in_query_parameters_are_refused(world, path, operation):
    client = world.client_for(path)
    for bad, text in BAD_FORM_TEXTS.items():
        for parameter in operation["parameters"]:
            if parameter["in"] != "query":
                continue
            response = client.get(path_values(world, path), {parameter["name"]: text})
            assert response.status_code == 400, (bad, parameter["name"], response.content)
            assert parameter["name"] in {error["field"] for error in response.json().get("errors", [])}


def test_the_nul_that_was_a_500_on_postgresql(world):
    before = snapshot(world)
    response = world.resident_client.post("/api/v1/consents", {"partner": world.partner.pk, "text_sha256": "a\x00b"},
                                          format="json")
    assert response.status_code == 400
    assert fields_named(response, "forbidden_character") == {"text_sha256"}
    assert snapshot(world) == before


@pytest.mark.parametrize(("path", "method", "field_name", "value"), [
    ("/api/v1/vehicles", "post", "label", 5),  # DRF read it as the text "5"
    ("/api/v1/guest-passes", "post", "one_time", "true"),  # ... and this as True
    ("/api/v1/consents", "post", "partner", "1"),  # ... and this as the id 1
    ("/partner/v1/access-decisions", "post", "credential.token", 12345678),
])
def test_a_json_value_of_another_type_than_its_field_is_refused(world, path, method, field_name, value):
    """The schema says `type: string` (or boolean, integer): a JSON value of another type is 400
    `invalid_type` naming the field, and nothing changes."""
    body = _with(example_body(world, path, method), field_name, value)
    before = snapshot(world)
    response = call(world, path, method, body)
    assert response.status_code == 400, response.content
    assert fields_named(response, "invalid_type") == {field_name}
    assert snapshot(world) == before


@pytest.mark.parametrize(("query", "field_name"), [
    ({"page": "0"}, "page"), ({"page": "a"}, "page"), ({"page_size": "abc"}, "page_size"),
    ({"page_size": "0"}, "page_size"), ({"page_size": "201"}, "page_size"),
])
@pytest.mark.parametrize("path", ["/api/v1/vehicles", "/api/v1/guest-passes", "/api/v1/history",
                                  "/api/v1/notifications"])
def test_page_parameters_out_of_their_range_are_400_naming_them(world, path, query, field_name):
    """Was 404 (page 0, page "a") or silently the default page size (page_size "abc", 0, 201)."""
    response = world.resident_client.get(path, query)
    assert response.status_code == 400, response.content
    assert field_name in {error["field"] for error in response.json()["errors"]}


def test_a_plate_another_car_has_is_a_409_conflict(world):
    """A well-formed request that conflicts with what exists: 409 `/problems/plate-taken` naming
    the field (was 400, which the schema gives to malformed requests)."""
    plate = "Е789КХ50"
    assert world.resident_client.post("/api/v1/vehicles", {"plate": plate}, format="json").status_code == 201
    before = snapshot(world)
    response = world.resident_client.post("/api/v1/vehicles", {"plate": "е 789 кх 50"}, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["type"] == "/problems/plate-taken"
    assert fields_named(response, "plate_taken") == {"plate"}
    assert snapshot(world) == before


def test_an_sdp_offer_may_hold_line_breaks(world):
    offer = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    response = call(world, "/api/v1/devices/{device_id}/video-sessions", "post", {"sdp_offer": offer})
    assert response.status_code == 201, response.content


def test_the_decision_hot_path_still_decides(world):
    response = call(world, "/partner/v1/access-decisions", "post",
                    example_body(world, "/partner/v1/access-decisions", "post"))
    assert response.status_code == 200, response.content
    assert response.json()["decision"] == "allow"


# --- partner webhooks: the Standard Webhooks envelope ---------------------------------------------


def _signed(caller, payload: str):
    webhook_id = f"msg_{uuid.uuid4().hex}"
    at = datetime.datetime.now(datetime.UTC)
    return {
        "HTTP_WEBHOOK_ID": webhook_id, "HTTP_WEBHOOK_TIMESTAMP": str(int(at.timestamp())),
        "HTTP_WEBHOOK_SIGNATURE": Webhook(caller.webhook_secret).sign(webhook_id, at, payload),
    }


def _envelope(device_ref: str, **extra) -> dict:
    return {"type": "device.online", "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
            "data": {"device_ref": device_ref}, **extra}


@pytest.mark.parametrize(("event", "field_name", "code"), [
    (lambda ref: _envelope(ref, **{UNKNOWN: 1}), UNKNOWN, "unknown_field"),
    (lambda ref: _envelope(ref, type="device.online\x00"), "type", "forbidden_character"),
    (lambda ref: {**_envelope(ref), "data": {"device_ref": ref, "reason": "a\x00b"}}, "data.reason",
     "forbidden_character"),
])
def test_a_webhook_envelope_follows_the_rules(world, event, field_name, code):
    caller = world.scene.caller
    before = snapshot(world)
    payload = json.dumps(event(world.scene.device.partner_device_ref))
    response = caller.client.post(WEBHOOKS, payload, content_type="application/json", secure=True,
                                  **caller.headers(), **_signed(caller, payload))
    assert response.status_code == 400, response.content
    assert field_name in fields_named(response, code)
    assert snapshot(world) == before
    world.scene.device.refresh_from_db()
    assert not world.scene.device.online


def test_a_webhook_envelope_within_the_rules_is_processed(world):
    caller = world.scene.caller
    payload = json.dumps(_envelope(world.scene.device.partner_device_ref))
    response = caller.client.post(WEBHOOKS, payload, content_type="application/json", secure=True,
                                  **caller.headers(), **_signed(caller, payload))
    assert response.status_code == 200, response.content


# --- outside DRF: the OAuth2 token endpoint and the login form -------------------------------------


@pytest.mark.parametrize(("method", "path", "params"), [
    ("post", "/o/token/", {"grant_type": "client_credentials", "client_id": "a\x00b", "client_secret": "x"}),
    ("post", "/o/token/", {"grant_type": "refresh_token", "refresh_token": "a\x1bb", "client_id": "mobile"}),
    ("post", "/o/revoke_token/", {"token": "x", "client_id": "a\x00b"}),
    ("post", "/o/introspect/", {"token": "a\x00b"}),
    ("get", "/o/authorize/", {"client_id": "a\x00b", "response_type": "code"}),
])
def test_control_characters_at_the_oauth2_endpoints_are_400(db, method, path, params):
    client = Client(enforce_csrf_checks=True)
    client.force_login(factories.resident().user)  # refused before /o/authorize/'s login check too
    before = AuditEvent.objects.count()
    response = getattr(client, method)(path, params)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_request"
    assert AuditEvent.objects.count() == before


def test_control_characters_in_basic_credentials_are_400(db):
    import base64

    basic = base64.b64encode(b"a\x00b:secret").decode()
    response = Client().post("/o/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_control_characters_at_the_login_form_are_not_a_500(world):
    response = Client().post("/accounts/login/", {"username": "a\x00b", "password": "x"})
    assert response.status_code == 200  # the form again, with its error
