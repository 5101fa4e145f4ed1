"""What reaches the public pool of a flood is refused before any database work: bad bearer tokens
past the address's budget, token requests past the address's rate."""

import base64

import pytest
from django.test import Client

from audit.actions import Action
from audit.models import AuditEvent
from tests.core.test_oauth_flow import PASSWORD

pytestmark = pytest.mark.django_db

FLOODER, NEIGHBOUR = "198.51.100.66", "198.51.100.67"


@pytest.fixture
def resident_token():
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from oauth2_provider.models import get_access_token_model

    user = get_user_model().objects.create_user("flood-neighbour", password=PASSWORD)
    return get_access_token_model().objects.create(
        user=user, token="valid-neighbour-token-0123456789", scope="devices:read",
        expires=timezone.now() + timedelta(hours=1),
    ).token


def test_bad_bearer_tokens_past_the_budget_are_refused_before_the_lookup(settings, django_assert_num_queries,
                                                                         resident_token):
    settings.API_BAD_TOKENS_PER_IP = "3/min"
    client = Client(REMOTE_ADDR=FLOODER)
    for attempt in range(3):
        assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer guess-{attempt}").status_code == 401
    for attempt in range(5):
        with django_assert_num_queries(0):
            refused = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer guess-more-{attempt}")
        assert refused.status_code == 429
        assert refused["Content-Type"] == "application/problem+json"
        assert int(refused["Retry-After"]) >= 1
    # the budget is the flooding address's: a resident elsewhere is served with their token
    neighbour = Client(REMOTE_ADDR=NEIGHBOUR).get("/api/v1/devices", HTTP_AUTHORIZATION=f"Bearer {resident_token}")
    assert neighbour.status_code != 429
    assert neighbour.status_code in (200, 403), neighbour.content  # 403: no resident profile behind the user


def test_valid_tokens_do_not_use_up_the_budget(settings, resident_token):
    settings.API_BAD_TOKENS_PER_IP = "2/min"
    client = Client(REMOTE_ADDR=NEIGHBOUR)
    for _ in range(6):
        assert client.get("/api/v1/devices", HTTP_AUTHORIZATION=f"Bearer {resident_token}").status_code != 429


def test_token_requests_past_the_rate_do_no_database_work(settings, django_assert_num_queries):
    settings.TOKEN_RATE_PER_IP = "3/min"
    client = Client(REMOTE_ADDR=FLOODER)
    basic = "Basic " + base64.b64encode(b"no-such-client:wrong").decode()

    def ask():
        return client.post("/o/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic)

    assert [ask().status_code for _ in range(4)] == [401, 401, 401, 429]
    for _ in range(5):
        with django_assert_num_queries(0):
            assert ask().status_code == 429
    refused = AuditEvent.objects.filter(action=Action.AUTH_TOKEN_REFUSED, source_ip=FLOODER)
    assert refused.count() == 4  # three bad credentials, and the window's first refusal
    assert refused.filter(reason="rate_limited").count() == 1
