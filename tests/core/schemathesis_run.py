"""The project's schemathesis run: every operation of the OpenAPI schema, all checks, all phases.

`contract_world` builds what the operations act on (a resident of an estate served by the
sandbox partner over mTLS, a partner calling the partner API, a compliance officer), `serving`
serves the WSGI application on a loopback port behind `Edge` (what nginx and the partner's
webhook sender add on the wire), and `run` points schemathesis' engine - the same one `st run`
drives - at it and returns what it found.

Nothing here names an operation: the operations come from the schema the URL conf produces, the
token each call carries from the security scheme the operation declares, and `WORLD_BINDINGS`
only says where the world's objects may stand in for generated ids (by parameter name), so a new
endpoint is fuzzed as soon as it is in the schema.
"""

from __future__ import annotations

import datetime
import io
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
import schemathesis
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.utils import timezone
from oauth2_provider.models import AccessToken
from schemathesis.engine import Status, events
from schemathesis.openapi.checks import RejectedPositiveData
from standardwebhooks import Webhook

from access.models import Notification
from access.services.guest_passes import guest_pass_create
from consent.services import consent_give, consent_text_publish
from core.auth.oauth_scopes import RESIDENT_SCOPES, SERVICE_SCOPES
from core.security.roles import COMPLIANCE_OFFICER
from partners.webhooks import WEBHOOK_ID
from tests import factories
from tests.access.api.conftest import make_token
from tests.access.decision_scene import build_scene
from tests.partners import partner_api

SEED = 20261130
RESIDENT_FORWARDED_FOR = "198.51.100.20"
TOKEN_LIFETIME = datetime.timedelta(hours=1)
_DIGITS = frozenset("0123456789")
_SIGNATURE_PREFIX = "v1,"


@dataclass
class ContractWorld:
    tokens: dict[str, str]  # security scheme -> bearer token
    caller: partner_api.PartnerCaller
    dictionaries: dict[str, list]
    scene: object = None


def _token(user, scopes) -> str:
    return make_token(user, " ".join(scopes), lifetime=TOKEN_LIFETIME)


def contract_world(estate, caller: partner_api.PartnerCaller) -> ContractWorld:
    """The objects the run's calls act on, and tokens for every security scheme of the schema."""
    resident = estate.resident
    officer = factories.staff_user(company_=resident.company, role=COMPLIANCE_OFFICER)
    scene = build_scene(caller)
    AccessToken.objects.filter(token_checksum__isnull=False, application__client_id=caller.client_id).update(
        expires=timezone.now() + TOKEN_LIFETIME)
    vehicle = factories.vehicle(resident_=resident)
    guest_pass = guest_pass_create(resident=resident, device=estate.barrier, plate=factories.unique_plate(),
                                   actor=resident.user)
    notification = Notification.objects.create(resident=resident, kind="door_opened", device=estate.door,
                                               occurred_at=timezone.now(), data={})
    text = consent_text_publish(version=f"v-{uuid.uuid4().hex[:6]}", body="Согласие на обработку биометрии")
    consent = consent_give(resident_id=resident.pk, company_id=resident.company_id, partner=estate.partner,
                           text=text, actor=resident.user)
    now = timezone.now()
    devices = [estate.door.pk, estate.barrier.pk, estate.camera.pk, estate.foreign_door.pk]
    return ContractWorld(
        tokens={
            "residentApp": _token(resident.user, RESIDENT_SCOPES),
            "serviceClient": _token(officer, SERVICE_SCOPES),
            "partnerClient": caller.token,
        },
        caller=caller,
        scene=scene,
        dictionaries={
            "devices": devices,
            "barriers": [estate.barrier.pk],
            "vehicles": [vehicle.pk],
            "guest_passes": [guest_pass.pk],
            "consents": [consent.pk],
            "notifications": [notification.pk],
            "partners": [estate.partner.pk],
            "buildings": [estate.door.building_id],
            "consent_texts": [text.sha256],
            "soon": [(now + datetime.timedelta(minutes=10)).isoformat()],
            "tomorrow": [(now + datetime.timedelta(days=1)).isoformat()],
            "past": ["2000-01-01T00:00:00Z"],
            "future": ["2100-01-01T00:00:00Z"],
            "partner_devices": [scene.device.partner_device_ref],
            "credentials": [scene.plate_token, scene.subject_id],
            "subjects": [scene.subject_id],
        },
    )


class Edge:
    """The WSGI application as it is reached in production: nginx adds the proxy hop's headers
    (X-Proxy-Auth, X-Forwarded-For/-Proto) and, on the partner listener, the verified client
    certificate; a partner signs each event it sends (Standard Webhooks) with its webhook
    secret. Well-formed webhook headers are signed over the body as sent (the timestamp becomes
    now); malformed or missing ones are passed on as they are, to be refused. `/partner/` goes to
    `partner_app` if the partner API has an application (a worker pool) of its own."""

    def __init__(self, app, caller: partner_api.PartnerCaller, *, partner_app=None):
        self.app = app
        self.partner_app = partner_app or app
        self.caller = caller

    def __call__(self, environ, start_response):
        partner = environ.get("PATH_INFO", "").startswith("/partner/")
        hop = self.caller.headers(token=None, cert="own" if partner else None,
                                  ip=partner_api.PARTNER_IP if partner else RESIDENT_FORWARDED_FOR)
        environ.update({key: value for key, value in hop.items() if key.startswith("HTTP_")})
        environ["HTTP_X_FORWARDED_PROTO"] = "https"
        if partner and self._well_formed_webhook(environ):
            self._sign(environ)
        return (self.partner_app if partner else self.app)(environ, start_response)

    @staticmethod
    def _well_formed_webhook(environ) -> bool:
        webhook_id = environ.get("HTTP_WEBHOOK_ID", "")
        stamp = environ.get("HTTP_WEBHOOK_TIMESTAMP", "")
        signature = environ.get("HTTP_WEBHOOK_SIGNATURE", "")
        return (bool(WEBHOOK_ID.match(webhook_id)) and bool(stamp) and set(stamp) <= _DIGITS
                and signature.startswith(_SIGNATURE_PREFIX))

    def _sign(self, environ) -> None:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        at = datetime.datetime.now(datetime.UTC)
        environ["HTTP_WEBHOOK_TIMESTAMP"] = str(int(at.timestamp()))
        environ["HTTP_WEBHOOK_SIGNATURE"] = Webhook(self.caller.webhook_secret).sign(
            environ["HTTP_WEBHOOK_ID"], at, body.decode("utf-8", "surrogateescape"))


class _QuietHandler(WSGIRequestHandler):
    # one request per connection: its thread ends, and closes its database connections, with it
    # (keep-alive connections would outlive the run and hold the test database open)
    protocol_version = "HTTP/1.0"

    def log_message(self, format, *args):
        pass


@contextmanager
def serving(app) -> Iterator[str]:
    """`app` on a free loopback port (one thread per connection; each closes its database
    connections when its connection ends, like Django's live server); yields the base URL."""
    server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, name="contract-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# Where the world's objects may stand in for generated values (by parameter). In positive cases
# only (schemathesis keeps a negative case negative): they let the fuzzer reach past "not yours"
# into the code behind - and make the stateful phase's chains start from real objects.
WORLD_BINDINGS = {
    "path.device_id": "devices",
    "path.vehicle_id": "vehicles",
    "path.pass_id": "guest_passes",
    "path.notification_id": "notifications",
    "path.id": "consents",
    "query.device_id": "devices",
    "query.partner": "partners",
    "query.since": "past",
    "query.until": "future",
    "query.from": "past",
    "query.to": "future",
    "body.device_id": "barriers",  # a guest pass's
    "body.partner": "partners",
    "body.text_sha256": "consent_texts",
    "body.building": "buildings",
    "body.retention_until": "tomorrow",
    "body.valid_from": "soon",
    "body.valid_until": "tomorrow",
    "body.device_ref": "partner_devices",
    "body.credential.token": "credentials",
    "body.data.device_ref": "partner_devices",
    "body.data.subject_id": "subjects",
}
# Known-bad text, tried in place of every text input of the schema in negative cases (a fuzzing
# dictionary): the characters the input rule refuses, so each text input meets them often rather
# than by chance.
HOSTILE_TEXT = ["a\u0000b", "\u0000", "a\u001bb", "a\u0085b", "a\u007fb", "a\nb", "a\rb"]
BINDING_PROBABILITY = 0.6
STATELESS_PHASES = ("examples", "coverage", "fuzzing")


def _resolve(raw: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = raw["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def text_inputs(raw: dict) -> set[str]:
    """Binding keys (`body.label`, `query.purpose`, `body.credential.token`) of the schema's text inputs."""
    keys = set()
    for item in raw["paths"].values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            keys |= {f"query.{p['name']}" for p in operation.get("parameters", [])
                     if p["in"] == "query" and p["schema"].get("type") == "string"}
            for content in operation.get("requestBody", {}).get("content", {}).values():
                for name, prop in _resolve(raw, content["schema"]).get("properties", {}).items():
                    prop = _resolve(raw, prop)
                    if prop.get("type") == "string" and prop.get("format") != "binary":
                        keys.add(f"body.{name}")
                    keys |= {f"body.{name}.{inner}" for inner, leaf in prop.get("properties", {}).items()
                             if _resolve(raw, leaf).get("type") == "string"}
    return keys


# What a schema cannot say about valid input (docs/api.md, "What the schema cannot say"): a
# request of the right shape may still name an object that is not there or not yours, break a
# rule between two fields or relative to now, or carry a photo that is no JPEG or PNG. The API
# answers those with these field error codes (400) or problem types, and the run accepts them as
# answers to schema-valid input; anything else schema-valid input gets beyond 2xx, 401, 403, 404,
# 409 and 429 is a finding.
SEMANTIC_ERROR_CODES = frozenset({
    "does_not_exist",  # partner, consent text, device: unknown or not yours
    "not_a_barrier", "partner_not_configured",  # a guest pass needs a barrier whose partner is set up
    "text_not_applicable", "no_face_contract", "bad_retention",  # a consent needs the partner's text and contract
    "in_past", "order", "too_long",  # windows: not in the past, end after start, at most N days
})
SEMANTIC_PROBLEM_TYPES = frozenset({
    "/problems/photo-undecodable", "/problems/photo-too-small", "/problems/photo-unsupported-type",
    "/problems/photo-decompression-bomb",
    "/problems/unknown-device", "/problems/unknown-subject",  # a partner event about what is not the partner's
    # an Idempotency-Key names one request: used again for another device, 422 (the IETF
    # Idempotency-Key draft's answer to a key reused with another request)
    "/problems/idempotency-key-reused",
})


def is_semantic_refusal(response) -> bool:
    """Whether `response` refuses for one of the reasons above, and only for those."""
    try:
        problem = json.loads(response.content)
    except ValueError:
        return False
    if not isinstance(problem, dict):
        return False
    if problem.get("type") in SEMANTIC_PROBLEM_TYPES:
        return True
    codes = {error.get("code") for error in problem.get("errors") or []}
    return problem.get("type") == "/problems/validation-error" and bool(codes) and codes <= SEMANTIC_ERROR_CODES


def _accept_semantic_refusals(context, failure, case, response) -> bool:
    return not (isinstance(failure, RejectedPositiveData) and is_semantic_refusal(response))


def config(world: ContractWorld, raw: dict, *, max_examples: int, max_steps: int = 20,
           stateful: bool = True, stateless: bool = True) -> schemathesis.Config:
    """The run's configuration for the schema `raw`: every check, every phase, a fixed seed, and
    the world's objects and the hostile text as dictionaries bound to the inputs they fit."""
    entries: dict[str, list] = {key: list(world.dictionaries[name]) for key, name in WORLD_BINDINGS.items()
                                if world.dictionaries.get(name)}
    for key in text_inputs(raw):
        entries.setdefault(key, []).extend(HOSTILE_TEXT)
    names = {key: "for_" + key.replace(".", "_") for key in entries}
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "workers": 1,
        "generation": {"max-examples": max_examples, "database": "none"},
        "checks": {"enabled": True},
        "phases": {**{phase: {"enabled": stateless} for phase in STATELESS_PHASES},
                   "stateful": {"enabled": stateful, "max-steps": max_steps}},
        "dictionaries": {names[key]: {"values": values} for key, values in entries.items()},
        "parameters": {key: {"dictionary": names[key], "probability": BINDING_PROBABILITY} for key in entries},
    })


@dataclass
class Finding:
    operation: str
    check: str
    title: str
    message: str
    phase: str
    request: str
    status: int | None
    response: str

    def __str__(self) -> str:
        return (f"{self.operation} [{self.check}, {self.phase}] {self.title}\n  {self.message}\n  {self.request}\n"
                f"  -> {self.status} {self.response}")


@dataclass
class RunResult:
    findings: list[Finding]
    errors: list[str]
    declared: set[str]  # labels of the operations the schema declares (that `include` selected)
    operations: set[str]  # labels of the operations tested
    phases: dict[str, str]  # phase -> status
    checks: Counter  # check -> how many responses it judged
    chains: set[tuple[str, str, int]]  # stateful steps: (operation, the operation its link led to, status)
    seconds: float

    def report(self) -> str:
        unique = {(f.operation, f.check, f.title): f for f in self.findings}
        return "\n".join([*map(str, unique.values()), *self.errors])


class _Tokens:
    """The bearer token of the security scheme each operation declares (none for public ones)."""

    tokens: dict[str, str] = {}

    def get(self, case, context):
        for requirement in case.operation.definition.raw.get("security", []):
            for scheme in requirement:
                if scheme in self.tokens:
                    return self.tokens[scheme]
        return None

    def set(self, case, data, context):
        if data is not None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _interaction(recorder, case_id: str) -> tuple[str, int | None, str]:
    interaction = recorder.interactions.get(case_id)
    if interaction is None:
        return "", None, ""
    request = interaction.request
    body = request.body.decode("utf-8", "replace")[:300] if isinstance(request.body, bytes) else ""
    response = interaction.response
    return (f"{request.method} {request.uri} {body}", response.status_code if response else None,
            response.content[:300].decode("utf-8", "replace") if response and response.content else "")


def run(base_url: str, world: ContractWorld, *, max_examples: int, stateful: bool = True, stateless: bool = True,
        **include) -> RunResult:
    """Run every phase over the operations of the served schema (`include`: schemathesis' filters,
    e.g. operation_id=..., to run some only; `stateful`/`stateless`: False leaves those phases out)."""
    raw = requests.get(f"{base_url}/api/schema/?format=json", timeout=30).json()
    cfg = config(world, raw, max_examples=max_examples, stateful=stateful, stateless=stateless)
    schema = schemathesis.openapi.from_dict(raw, config=cfg)
    schema.config.base_url = base_url
    if include:
        schema = schema.include(**include)
    schema.auth(refresh_interval=None)(type("WorldTokens", (_Tokens,), {"tokens": world.tokens}))
    schema.hook("filter_failure")(_accept_semantic_refusals)
    findings: list[Finding] = []
    errors: list[str] = []
    operations: set[str] = set()
    phases: dict[str, str] = {}
    checks_run: Counter = Counter()
    chains: set[tuple[str, str, int]] = set()
    started = time.monotonic()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            operations.add(event.recorder.label)
            checks_run.update(check.name for checks in event.recorder.checks.values() for check in checks)
            chains |= _chains(event.recorder)
            if event.status != Status.FAILURE:
                continue
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is None:
                        continue
                    failure = check.failure_info.failure
                    request, status, response = _interaction(event.recorder, case_id)
                    node = event.recorder.cases.get(case_id)
                    meta = node.value.meta if node is not None else None
                    phase = f"{meta.phase.name.value}/{meta.generation.mode.value}" if meta else event.phase.value
                    findings.append(Finding(event.recorder.label, check.name, failure.title, failure.message, phase,
                                            request, status, response))
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.PhaseFinished):
            phases[event.phase.name.value] = event.status.value
    declared = {result.ok().label for result in schema.get_all_operations()}
    return RunResult(findings, errors, declared, operations, phases, checks_run, chains, time.monotonic() - started)


def _chains(recorder) -> set[tuple[str, str, int]]:
    steps = set()
    for case_id, node in recorder.cases.items():
        parent = recorder.cases.get(node.parent_id) if node.parent_id else None
        interaction = recorder.interactions.get(case_id)
        if parent is not None and node.transition is not None and interaction and interaction.response:
            steps.add((parent.value.operation.label, node.value.operation.label, interaction.response.status_code))
    return steps
