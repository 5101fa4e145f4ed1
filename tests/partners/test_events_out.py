"""Events we send to the partner: outbox `event_out` -> `POST /v1/events` at the real sandbox
(HTTPS + mTLS), signed per Standard Webhooks with the partner's outbound secret; the sandbox
verifies, rejects forged and stale signatures (401), de-duplicates by webhook-id and stores
what it accepted. Real PostgreSQL and Redis; Celery eager, so the outbox delivers on commit."""

import datetime
import json
import time

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from partners.client import PartnerAuthError, partner_connection_for, send_event
from partners.models import OutboxMessage
from partners.outbound_events import DATA_KEYS, partner_event_enqueue
from partners.outbox.services import outbox_deliver, outbox_retry_now
from partners.selectors import current_credentials, webhook_secrets
from partners.services import partner_credentials_rotate
from tests.partners import outbox_fixtures

client_settings = outbox_fixtures.client_settings
sandbox_partner = outbox_fixtures.sandbox_partner

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ALERT = {"alert_id": "alert:17", "kind": "unknown_credentials", "partner_suspended": False}
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="


def our_secret(partner) -> str:
    return current_credentials(partner=partner).outbound_webhook_secret


def partner_knows(sandbox, *secrets) -> None:
    sandbox.control.configure_smarthome("https://127.0.0.1:9", outbound_webhook_secret=list(secrets))


def received(sandbox) -> list[dict]:
    return sandbox.control.state()["events_received"]


def enqueue(partner, event_type="security.alert", data=None) -> OutboxMessage:
    with transaction.atomic():
        return partner_event_enqueue(partner_id=partner.pk, event_type=event_type, data=data or ALERT)


def make_due_and_deliver(message) -> str:
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    return outbox_deliver(message_id=message.pk)


def test_signed_event_is_verified_stored_and_audited(sandbox_partner, clean_sandbox):
    partner_knows(clean_sandbox, our_secret(sandbox_partner))
    message = enqueue(sandbox_partner)
    message.refresh_from_db()
    assert message.status == "delivered"
    assert message.idempotency_key.startswith("evt_")
    assert message.result == {"webhook_id": message.idempotency_key, "duplicate": False}
    [event] = received(clean_sandbox)
    assert (event["webhook_id"], event["type"], event["data"], event["deliveries"]) == (
        message.idempotency_key, "security.alert", ALERT, 1)
    assert event["timestamp"] == message.payload["timestamp"]
    logged = [(e["operation"], e["request_id"], e["http_status"]) for e in clean_sandbox.control.log()["entries"]]
    assert logged == [("event.receive", message.idempotency_key, 200)]
    audit = AuditEvent.objects.get(action=Action.PARTNER_EVENT_OUT)
    assert (audit.outcome, audit.request_id, audit.partner_id) == (
        Outcome.SUCCESS, message.idempotency_key, sandbox_partner.pk)


def test_forged_signature_is_401_retried_then_dead_lettered_and_nothing_stored(
        sandbox_partner, clean_sandbox, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    partner_knows(clean_sandbox, OTHER_SECRET)  # the partner expects another secret: our signature is forged
    message = enqueue(sandbox_partner)
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_http_status) == ("pending", 1, 401)
    assert make_due_and_deliver(message) == "dead"
    message.refresh_from_db()
    assert (message.status, message.last_error) == ("dead", "http_401")
    assert received(clean_sandbox) == []
    assert AuditEvent.objects.filter(action=Action.PARTNER_EVENT_OUT, outcome=Outcome.FAILURE).count() == 2
    # the partner learns the right secret; an operator puts the message back in line
    partner_knows(clean_sandbox, our_secret(sandbox_partner))
    outbox_retry_now(message=message)
    message.refresh_from_db()
    assert message.status == "delivered"
    assert [e["webhook_id"] for e in received(clean_sandbox)] == [message.idempotency_key]


@pytest.mark.parametrize("skew_s", [-600, 600])
def test_stale_or_future_timestamp_is_401(sandbox_partner, clean_sandbox, skew_s):
    partner_knows(clean_sandbox, our_secret(sandbox_partner))
    conn = partner_connection_for(sandbox_partner)
    at = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=skew_s)
    with pytest.raises(PartnerAuthError) as refused:
        send_event(conn, webhook_id="evt_stale", event={"type": "security.alert", "data": {}},
                   secrets=[our_secret(sandbox_partner)], timestamp=at)
    assert refused.value.http_status == 401
    assert received(clean_sandbox) == []
    # the sandbox names the reason (a raw request, signed the same way)
    session = clean_sandbox.authorized_session()
    body = json.dumps({"type": "security.alert", "data": {}})
    headers = {"webhook-id": "evt_raw", "webhook-timestamp": str(int(at.timestamp())),
               "webhook-signature": Webhook(our_secret(sandbox_partner)).sign("evt_raw", at, body),
               "Content-Type": "application/json"}
    response = session.post(f"{clean_sandbox.base_url}/v1/events", data=body, headers=headers, timeout=5)
    assert (response.status_code, response.json()["error"]) == (401, "stale_timestamp")
    now = datetime.datetime.now(datetime.UTC)
    headers["webhook-timestamp"] = str(int(now.timestamp()))
    headers["webhook-signature"] = Webhook(our_secret(sandbox_partner)).sign("evt_raw", now, body + " ")
    response = session.post(f"{clean_sandbox.base_url}/v1/events", data=body, headers=headers, timeout=5)
    assert (response.status_code, response.json()["error"]) == (401, "invalid_signature")
    assert received(clean_sandbox) == []


def test_a_redelivered_message_is_processed_once(sandbox_partner, clean_sandbox):
    partner_knows(clean_sandbox, our_secret(sandbox_partner))
    message = enqueue(sandbox_partner)
    # the worker died after the partner answered but before it committed "delivered"
    OutboxMessage.objects.filter(pk=message.pk).update(status="pending", delivered_at=None)
    time.sleep(1.1)  # a new signature timestamp: only the webhook-id stays the same
    assert make_due_and_deliver(message) == "delivered"
    message.refresh_from_db()
    assert message.result == {"webhook_id": message.idempotency_key, "duplicate": True}
    [event] = received(clean_sandbox)
    assert (event["webhook_id"], event["deliveries"]) == (message.idempotency_key, 2)


def test_during_a_rotation_events_carry_both_signatures(sandbox_partner, clean_sandbox):
    old = our_secret(sandbox_partner)
    partner_credentials_rotate(partner=sandbox_partner, client_secret=clean_sandbox.client_secret)
    new = our_secret(sandbox_partner)
    assert new != old
    assert new.startswith("whsec_")
    assert webhook_secrets(partner_id=sandbox_partner.pk, direction="outbound") == [new, old]
    partner_knows(clean_sandbox, old)  # the partner has not switched yet
    first = enqueue(sandbox_partner)
    partner_knows(clean_sandbox, new)  # ... now it has
    second = enqueue(sandbox_partner)
    assert [e["webhook_id"] for e in received(clean_sandbox)] == [first.idempotency_key, second.idempotency_key]


def test_rotation_keeps_a_given_outbound_secret_and_refuses_a_malformed_one(sandbox_partner):
    from django.core.exceptions import ValidationError

    issued = partner_credentials_rotate(partner=sandbox_partner, outbound_webhook_secret=OTHER_SECRET)
    assert issued.secrets["outbound_webhook_secret"] == OTHER_SECRET
    assert issued.credentials.outbound_webhook_secret_fingerprint
    with pytest.raises(ValidationError):
        partner_credentials_rotate(partner=sandbox_partner, outbound_webhook_secret="not-a-secret")
    assert our_secret(sandbox_partner) == OTHER_SECRET


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("resident.moved", {"site_ref": "building-1"}),  # unknown type
        ("security.alert", {"plate": "A123BC77"}),  # a key that is not a code
        ("subject.revoked", {"subject_id": "sub_1", "reason": "Иванов Иван"}),  # a name as a value
        ("subject.revoked", {"subject_id": "someone@example.ru"}),  # an e-mail
        ("allowlist.changed", {"site_ref": {"nested": "x"}}),
    ],
)
def test_events_refuse_anything_but_codes(sandbox_partner, event_type, data):
    with pytest.raises(ValueError, match="event"), transaction.atomic():
        partner_event_enqueue(partner_id=sandbox_partner.pk, event_type=event_type, data=data)
    assert not OutboxMessage.objects.filter(operation="event_out").exists()


def test_event_payloads_hold_codes_only(sandbox_partner, clean_sandbox):
    partner_knows(clean_sandbox, our_secret(sandbox_partner))
    enqueue(sandbox_partner)
    enqueue(sandbox_partner, "subject.revoked", {"subject_id": "sub_abc", "reason": "expired"})
    enqueue(sandbox_partner, "allowlist.changed", {"site_ref": "building-3", "version": 1700000000000})
    for event in received(clean_sandbox):
        assert set(event["data"]) <= DATA_KEYS
        assert all(isinstance(v, bool | int) or (v.isascii() and " " not in v) for v in event["data"].values())
    assert len(received(clean_sandbox)) == 3


@pytest.mark.parametrize("notify", [False, True])
def test_security_alert_notifies_the_partner_only_when_configured(sandbox_partner, clean_sandbox, settings, notify):
    from access.anomalies import security_alert_raise

    settings.ACCESS_ANOMALY = {"notify_partner": notify}
    partner_knows(clean_sandbox, our_secret(sandbox_partner))
    with transaction.atomic():
        alert = security_alert_raise(partner_id=sandbox_partner.pk, kind="deny_ratio", scope="partner",
                                     observed=0.9, threshold=0.8, window_s=60)
    expected = [{"alert_id": alert.pk, "kind": "deny_ratio", "partner_suspended": False}] if notify else []
    assert [e["data"] for e in received(clean_sandbox) if e["type"] == "security.alert"] == expected
