"""The OpenAPI schema tells the truth: schemathesis over every operation it declares.

The run (tests/core/schemathesis_run.py) serves the application on a loopback port behind what
nginx and a partner add, takes the operations from /api/schema/ - a new endpoint is covered as
soon as it is in the schema - and runs every phase (coverage, fuzzing, stateful) with every check
against the real PostgreSQL, Redis and the sandbox partner over mTLS. The seed is fixed, so a
finding reproduces; docs/api.md says how to run it alone and how to read what it reports.
"""

from __future__ import annotations

import pytest

from audit import refusals
from smarthome.settings.pools import PARTNER
from tests.access.api.conftest import estate  # noqa: F401 - fixtures
from tests.core.schemathesis_run import Edge, contract_world, run, serving
from tests.partners import partner_api
from tests.partners.outbox_fixtures import client_settings, sandbox_partner  # noqa: F401 - fixtures
from tests.pools import PoolWSGIHandler

pytestmark = [pytest.mark.slow, pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres,
              pytest.mark.django_db(transaction=True)]
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller

# Examples per operation and phase: enough for the NUL below (and its kin) to be met, within the
# suite's time (the run takes about three minutes on a quiet 2-core machine).
MAX_EXAMPLES = 15
CHECKS = {
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
    "response_headers_conformance", "negative_data_rejection", "positive_data_acceptance", "use_after_free",
    "ensure_resource_availability", "ignored_auth", "missing_required_header", "unsupported_method",
}


@pytest.fixture
def contract_settings(settings, partner_api_settings):
    """Limits that would turn the fuzzer's volume into 429s, 409s or a suspended partner are lifted
    (their own tests hold them); everything else is as deployed."""
    settings.API_RATE_PER_MIN = 10**6
    settings.OPEN_RATE_PER_MIN = 10**6
    settings.GUEST_PASSES_ACTIVE_MAX = 10**6  # else the fuzzing fills them and the stateful chains meet 409s
    settings.PARTNER_DECISION_RATE = "100000/s"
    settings.ACCESS_ANOMALY = {"suspend_on": [], "max_opens_per_resident": 10**6}
    yield settings
    refusals.flush()  # the refused calls the run counted, while the database is still there


def test_every_operation_meets_its_schema(estate, partner_caller, contract_settings):  # noqa: F811
    from smarthome.wsgi import application

    world = contract_world(estate, partner_caller)
    with serving(Edge(application, world.caller, partner_app=PoolWSGIHandler(PARTNER))) as base_url:
        result = run(base_url, world, max_examples=MAX_EXAMPLES)
    assert not result.findings, result.report()
    assert not result.errors, result.errors
    assert len(result.declared) >= 29
    assert result.operations >= result.declared
    assert result.phases["coverage"] == result.phases["fuzzing"] == result.phases["stateful"] == "success"
    assert set(result.checks) >= CHECKS, result.checks
    # the stateful phase follows links from one operation's answer into the next
    assert len({(source, target) for source, target, status in result.chains if status < 300}) >= 3, result.chains


def test_the_stateful_phase_follows_a_guest_pass_from_its_creation(
        estate, partner_caller, contract_settings):  # noqa: F811
    """POST guest-passes -> GET guest-passes/{pass_id} and POST .../revoke along the schema's links
    (among every operation the random walks rarely meet these in a few steps; on these alone they do)."""
    from smarthome.wsgi import application

    world = contract_world(estate, partner_caller)
    with serving(Edge(application, world.caller, partner_app=PoolWSGIHandler(PARTNER))) as base_url:
        result = run(base_url, world, max_examples=MAX_EXAMPLES, stateless=False, path_regex="/guest-passes")
    assert not result.findings, result.report()
    assert result.phases["stateful"] == "success"
    assert ("POST /api/v1/guest-passes", "GET /api/v1/guest-passes/{pass_id}", 200) in result.chains
    assert ("POST /api/v1/guest-passes", "POST /api/v1/guest-passes/{pass_id}/revoke", 200) in result.chains
    assert ("POST /api/v1/guest-passes/{pass_id}/revoke", "GET /api/v1/guest-passes/{pass_id}", 200) in result.chains


def test_the_run_finds_the_nul_that_was_a_500_when_the_input_rule_is_off(
        estate, partner_caller, contract_settings, monkeypatch):  # noqa: F811
    """Without the character rule, `POST consents` with a NUL in `text_sha256` reaches PostgreSQL
    (DataError: a 500). The same run, on that operation, finds it by itself - with ten times the
    examples of the whole run: about one generated body in five reaches the serializer, and a
    hostile value is one of several a text input may get, so 15 examples meet it only by luck
    (the whole run keeps 15 per operation for the suite's time; the input rule itself is proved
    for every operation by tests/core/test_input_rules.py)."""
    from smarthome.wsgi import application

    monkeypatch.setattr("core.api.serializers._text_breaches", lambda *args, **kwargs: None)
    world = contract_world(estate, partner_caller)
    with serving(Edge(application, world.caller, partner_app=PoolWSGIHandler(PARTNER))) as base_url:
        result = run(base_url, world, max_examples=10 * MAX_EXAMPLES, stateful=False, operation_id="consents_give")
    server_errors = [finding for finding in result.findings if finding.check == "not_a_server_error"]
    assert server_errors, result.report()
    assert all(finding.status == 500 for finding in server_errors)
    assert any("\\u0000" in finding.request for finding in server_errors), result.report()
