"""No name, phone, e-mail, plate, photo, token or secret reaches a log line."""

import base64
import logging

import pytest
from django.test import Client

from core.observability.logging import REDACTED, redact_text
from tests.core.log_capture import captured_json_logs

SENSITIVE = {
    "phone": "+7 (916) 123-45-67",
    "phone_plain": "89161234567",
    "email": "ivan.petrov@example.ru",
    "name": "Иванов Иван Петрович",
    "plate_cyr": "А123ВС777",
    "plate_lat": "a123bc77",
    "plate_spaced": "Х 001 ХХ 99",
    "taxi": "АВ12377",
    "moto": "1234АВ77",
    "jwt": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzbWFydGhvbWUifQ.c2lnbmF0dXJlLXZhbHVl",
    "bearer": "Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
    "whsec": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "photo": base64.b64encode(bytes(range(256)) * 4).decode(),
}


@pytest.mark.parametrize(("kind", "value"), SENSITIVE.items())
def test_redact_text_masks(kind, value):
    masked = redact_text(f"before {value} after")
    assert value not in masked, kind
    assert REDACTED in masked


@pytest.mark.parametrize(
    "text",
    ["request 3fa9c2 took 12 ms", "device sbx-door-1 opened", "status=200 route=api/v1/devices/<int:pk>/open"],
)
def test_ordinary_operational_text_survives(text):
    assert redact_text(text) == text


def test_key_value_secrets_keep_the_key():
    assert redact_text("client_secret=s3cr3t-value&grant_type=x") == f"client_secret={REDACTED}&grant_type=x"
    assert redact_text('{"password": "hunter2hunter2"}') == f'{{"password": "{REDACTED}"}}'


def test_no_sensitive_value_in_any_log_line_of_a_request_cycle(settings):
    """Log sensitive data every way a careless developer could, then read the JSON lines."""
    logger = logging.getLogger("smarthome.careless")
    with captured_json_logs() as lines:
        logger.info("resident %s phone %s email %s", SENSITIVE["name"], SENSITIVE["phone"], SENSITIVE["email"])
        logger.warning("plate seen", extra={"plate": SENSITIVE["plate_cyr"], "note": SENSITIVE["plate_lat"]})
        logger.info("auth header", extra={"headers": {"Authorization": SENSITIVE["bearer"], "X-Ok": "1"}})
        logger.info("photo %s", SENSITIVE["photo"])
        logger.info("token %s secret %s", SENSITIVE["jwt"], SENSITIVE["whsec"])
        try:
            raise ValueError(f"bad plate {SENSITIVE['plate_spaced']} for {SENSITIVE['email']}")
        except ValueError:
            logger.exception("failed")
        # Django's own error logging of a crashing API view
        Client(raise_request_exception=False).get(
            "/api/v1/_test/crash", HTTP_AUTHORIZATION=SENSITIVE["bearer"], HTTP_X_PHONE=SENSITIVE["phone"]
        )
    raw = lines[-1]["_raw"]
    assert raw.count("\n") >= 7
    for kind, value in SENSITIVE.items():
        assert value not in raw, kind
    assert "abc123secretvalue" not in raw
    assert "X-Ok" in raw  # the structure survives, only values are masked


pytestmark = [pytest.mark.urls("tests.core.problem_urls"), pytest.mark.django_db]
