"""The partner contract (docs/partner-contract.openapi.yaml) against the real sandbox partner over
HTTPS + mTLS.

schemathesis generates requests for every operation and checks the sandbox's answers: valid
requests get no server error and only documented status codes, content types, headers and
bodies; invalid requests (negative data) are refused with a 4xx; a request without its token is
refused (ignored_auth). Events to `POST /v1/events` are signed with the outbound secret the sandbox
was given, so the accepted path is exercised too. Each operation's documented example succeeds
with the status the contract promises.
"""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from standardwebhooks import Webhook

from tests.partners.outbox_fixtures import face_payload

pytestmark = [pytest.mark.slow, pytest.mark.partner]

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "partner-contract.openapi.yaml"
MAX_EXAMPLES = 15
GATE = "gate-1"
EVENT_SECRET = "whsec_" + base64.b64encode(b"contract-test-outbound-secret-32").decode()
POSITIVE_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_headers_conformance, response_schema_conformance, ignored_auth]
NEGATIVE_CHECKS = [not_a_server_error, negative_data_rejection, content_type_conformance]
EXAMPLE_STATUS = {
    "issueToken": 200, "openDevice": 200, "startVideoSession": 201, "enrolFace": 202, "deleteFace": 204,
    "replaceAllowlist": 200, "patchAllowlist": 200, "receiveEvent": 200, "readAuditLog": 200,
}


@pytest.fixture
def partner(clean_sandbox):
    clean_sandbox.control.put_device(GATE)
    clean_sandbox.control.configure_smarthome("https://127.0.0.1:9", outbound_webhook_secret=EVENT_SECRET)
    return clean_sandbox


@pytest.fixture
def operations():
    schema = schemathesis.openapi.from_path(CONTRACT)
    found = [result.ok() for result in schema.get_all_operations()]
    assert {operation.definition.raw["operationId"] for operation in found} == set(EXAMPLE_STATUS)
    return found


def signed(body: bytes) -> dict:
    """Standard Webhooks headers for `body` under the outbound secret the sandbox was given."""
    webhook_id = f"msg_{base64.b32encode(body[:20] or b'empty').decode().rstrip('=')}{len(body)}"
    now = datetime.datetime.now(datetime.UTC)
    signature = Webhook(EVENT_SECRET).sign(webhook_id, now, body.decode())
    return {"webhook-id": webhook_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature, "Content-Type": "application/json"}


def send(case, partner, *, checks, sign=True):
    """Send `case` over mTLS with our client certificate; its credentials travel as headers (not as
    session state), so schemathesis can take them away for its ignored_auth check."""
    operation_id = case.operation.definition.raw["operationId"]
    session = partner.session()
    tls = {"verify": session.verify, "cert": session.cert, "timeout": 10}
    if operation_id == "issueToken":
        headers = {"Authorization": "Basic " + base64.b64encode(
            f"{partner.client_id}:{partner.client_secret}".encode()).decode()}
        if isinstance(case.body, dict) and {"client_id", "client_secret"} & set(case.body):
            headers = {}  # client_secret_post: the form carries the client's credentials
    else:
        headers = {"Authorization": f"Bearer {partner.fetch_token(session)}"}
    if operation_id == "receiveEvent" and sign and isinstance(case.body, dict):
        body = json.dumps(case.body).encode()
        response = session.post(partner.base_url + "/v1/events", data=body, headers={**headers, **signed(body)},
                                timeout=10)
        case.validate_response(response, checks=checks, headers=headers, transport_kwargs=tls)
        return response
    return case.call_and_validate(base_url=partner.base_url, session=session, headers=headers, checks=checks,
                                  **tls)  # negative cases keep the headers generated for them


def fuzz(operation, partner, mode, checks):
    @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        send(case, partner, checks=checks, sign=mode == GenerationMode.POSITIVE)

    run()


def test_the_sandbox_answers_valid_requests_as_the_contract_says(partner, operations):
    for operation in operations:
        fuzz(operation, partner, GenerationMode.POSITIVE, POSITIVE_CHECKS)


def test_the_sandbox_refuses_invalid_requests(partner, operations):
    for operation in operations:
        if operation.definition.raw["operationId"] == "deleteFace":
            continue  # no body and any non-empty subject is valid: nothing can be invalid but the token
        fuzz(operation, partner, GenerationMode.NEGATIVE, NEGATIVE_CHECKS)


def example_case(operation, body=NOT_SET):
    """The operation's documented example (`body` instead of the documented one, if given)."""
    content = operation.definition.raw.get("requestBody", {}).get("content", {})
    for media_type in content.values():
        body = media_type.get("example", NOT_SET) if body is NOT_SET else body
    path_parameters = {"device_ref": GATE, "subject": "sub_Zm9vYmFyYmF6", "site_ref": "building-1"}
    names = {parameter.name for parameter in operation.path_parameters}
    return operation.Case(path_parameters={k: v for k, v in path_parameters.items() if k in names}, body=body)


def test_each_documented_example_succeeds(partner, operations):
    face = {"request_id": "enrol-0001", "consent_ref": "consent:1", "retention_until": (
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)).isoformat()}
    for operation in operations:
        operation_id = operation.definition.raw["operationId"]
        # a real JWE to the sandbox's key cannot be a static example
        body = {**face, "jwe": face_payload(partner)["jwe"]} if operation_id == "enrolFace" else NOT_SET
        case = example_case(operation, body)
        response = send(case, partner, checks=POSITIVE_CHECKS)
        assert response.status_code == EXAMPLE_STATUS[operation_id], (operation_id, response.text)
