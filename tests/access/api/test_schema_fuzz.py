"""schemathesis against /api/schema/ with a valid resident token: no 5xx, every response (status,
content type, body) as documented. Bounded examples per operation; marked slow.

(`schemathesis.pytest.from_fixture` fails on this pytest version, so the operations are driven
with hypothesis directly.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.access.api.conftest import make_token

pytestmark = [
    pytest.mark.slow, pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]

MAX_EXAMPLES = 10
# the resident API of the access app (other apps' endpoints under /api/v1/ have their own tests)
RESIDENT_PATHS = r"^/api/v1/(me|devices|vehicles|guest-passes|history|notifications)"


def test_resident_api_matches_its_schema(estate, settings):
    from smarthome.wsgi import application

    settings.API_RATE_PER_MIN = 100000
    settings.OPEN_RATE_PER_MIN = 100000
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application).include(
        path_regex=RESIDENT_PATHS
    )
    headers = {"Authorization": f"Bearer {make_token(estate.resident.user)}"}
    checks = [content_type_conformance, response_schema_conformance, status_code_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:

        @hypothesis_settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                             suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case):
            response = case.call_and_validate(headers=headers, checks=checks)
            assert response.status_code < 500, (case.method, case.formatted_path, response.status_code)

        run()
