"""Inbound partner events (`POST /partner/v1/events`), verified per the Standard Webhooks spec.

Verification: HMAC-SHA256 over `webhook-id.webhook-timestamp.body` with the partner's webhook
secret (`standardwebhooks`), a 5-minute timestamp tolerance, and every signature in the header
tried against the current secret and, during a rotation, the secrets of credentials revoked
less than WEBHOOK_PREVIOUS_SECRET_GRACE_S ago (not after an emergency rotation, which drops them
at once). A `webhook-id` is processed once per partner: a
replay is acknowledged (200) but changes nothing. The envelope holds `type`, `timestamp` and
`data` only, without control characters (core.api.serializers.input_errors: 400 naming the
field); `data` is flat (text, numbers, booleans) and keeps only DATA_KEYS. Unknown event types are stored and
acknowledged (forward compatible); known ones are dispatched through
`partners.signals.partner_event_received`, in the same transaction as the stored row.
"""

import datetime
import json
import re
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext
from rest_framework.exceptions import ErrorDetail
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from core.api.serializers import input_errors
from partners.models import InboundWebhook, Partner
from partners.selectors import webhook_secrets
from partners.signals import partner_event_received

KNOWN_EVENT_TYPES = frozenset({
    "door.opened", "barrier.opened", "access.denied", "face.not_recognised", "device.online", "device.offline",
    "enrolment.completed", "enrolment.failed", "subject.deleted",
})
# Only these keys of an event's `data` are kept (pseudonymous ids and codes): never personal data.
DATA_KEYS = frozenset({
    "device_ref", "subject_id", "decision_id", "request_id", "reason", "result", "occurred_at", "deletion_id",
    "enrolment_id", "error", "credential_type", "status",
})
# The Standard Webhooks envelope; any other key is refused (400 naming it).
ENVELOPE_KEYS = frozenset({"type", "timestamp", "data"})
EVENT_TYPE = re.compile(r"^[a-z0-9_.]{1,64}$")
WEBHOOK_ID = re.compile(r"^[A-Za-z0-9:._-]{1,128}$")
_VALUE = re.compile(r"^[A-Za-z0-9:._+-]{0,128}$")


class WebhookRejected(Exception):
    """The signature, the timestamp or the headers did not verify (code: a short reason)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


class EventRefused(Exception):
    """Raised by a `partner_event_received` receiver: the event names something that is not the
    partner's (another partner's device, a subject it does not hold). Nothing of the event is kept
    (its transaction rolls back), `webhook.rejected` is recorded, and the partner gets 422 with the
    problem type `code` so it notices."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


class WebhookMalformed(Exception):
    """Verified, but not an event we can read: {type, timestamp?, data?}. `errors`: field errors
    (DRF's shape) when the envelope has unknown keys or control characters."""

    def __init__(self, message: str, errors: dict | None = None):
        super().__init__(message)
        self.errors = errors


@dataclass(frozen=True)
class Received:
    webhook: InboundWebhook
    duplicate: bool


def webhook_verify(*, secrets: list[str], body: bytes, headers: dict) -> None:
    """Raise WebhookRejected unless one of `secrets` signed `body` with these headers, recently."""
    if not secrets:
        raise WebhookRejected("no_secret")
    reason = "bad_signature"
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
            return
        except WebhookVerificationError as error:
            if "timestamp" in str(error).lower():
                reason = "stale_timestamp"
            elif "missing" in str(error).lower():
                reason = "missing_headers"
        except ValueError:  # a malformed signature list, base64 or encoding
            reason = "malformed_signature"
    raise WebhookRejected(reason)


def _event(body: bytes) -> tuple[str, dict, datetime.datetime | None]:
    try:
        event = json.loads(body)
    except ValueError:
        raise WebhookMalformed(gettext("The body is not JSON.")) from None
    refused = input_errors(event, known=ENVELOPE_KEYS) if isinstance(event, dict) else None
    if refused:
        raise WebhookMalformed(gettext("The event has unknown keys or control characters."), errors=refused)
    if not isinstance(event, dict) or not isinstance(event.get("type"), str) or not EVENT_TYPE.match(event["type"]):
        raise WebhookMalformed(gettext("The event needs a `type` code ([a-z0-9_.])."))
    data = event.get("data", {})
    if not isinstance(data, dict):
        raise WebhookMalformed(gettext("`data` must be an object."))
    nested = {f"data.{key}": [ErrorDetail(gettext("Expected text, a number or a boolean."), code="invalid_type")]
              for key, value in data.items() if not isinstance(value, str | int | float)}
    if nested:
        raise WebhookMalformed(gettext("`data` holds text, numbers and booleans only."), errors=nested)
    kept = {
        key: value for key, value in data.items()
        if key in DATA_KEYS and (isinstance(value, bool | int) or (isinstance(value, str) and _VALUE.match(value)))
    }
    return event["type"], kept, _occurred_at(event.get("timestamp"))


def _occurred_at(timestamp) -> datetime.datetime | None:
    """The envelope's `timestamp`: absent, or an RFC 3339 date-time with its offset."""
    if timestamp is None:
        return None
    try:
        occurred = parse_datetime(timestamp) if isinstance(timestamp, str) else None
    except ValueError:  # well-formed but no such date (month 13)
        occurred = None
    if occurred is None or occurred.tzinfo is None:
        raise WebhookMalformed("`timestamp` must be a date-time with its UTC offset (RFC 3339).", errors={
            "timestamp": [ErrorDetail("Enter a date-time with its UTC offset (RFC 3339).", code="invalid")]})
    return occurred


def _audit(partner: Partner, action: Action, outcome: Outcome, reason: str, webhook_id: str = "") -> None:
    record(
        action=action, outcome=outcome, actor_kind=ActorKind.PARTNER, actor_ref=f"partner:{partner.pk}",
        object_type="webhook", object_ref=f"webhook:{webhook_id}"[:64] if WEBHOOK_ID.match(webhook_id or "") else "",
        partner_id=partner.pk, reason=reason,
    )


def inbound_webhook_receive(*, partner: Partner, body: bytes, headers: dict) -> Received:
    """Verify, de-duplicate, store and dispatch one partner event.

    Raises WebhookRejected (recorded as `webhook.rejected`, nothing stored), WebhookMalformed, or
    EventRefused from a receiver (recorded as `webhook.rejected` with its code, nothing stored).
    Stores an InboundWebhook (only the whitelisted `data` keys), sends `partner_event_received`
    for known types and records `webhook.received` - all in one transaction. A webhook-id seen
    before returns the stored row with duplicate=True and changes nothing.
    """
    headers = {key.lower(): value for key, value in headers.items()}
    try:
        webhook_verify(secrets=webhook_secrets(partner_id=partner.pk, direction="inbound"), body=body,
                       headers=headers)
    except WebhookRejected as rejected:
        _audit(partner, Action.WEBHOOK_REJECTED, Outcome.DENIED, rejected.code)
        raise
    webhook_id = headers["webhook-id"]
    if not WEBHOOK_ID.match(webhook_id):
        raise WebhookMalformed(gettext("webhook-id must be 1-128 characters [A-Za-z0-9:._-]."))
    event_type, data, occurred_at = _event(body)
    existing = InboundWebhook.objects.filter(partner=partner, webhook_id=webhook_id).first()
    if existing is not None:
        return Received(existing, duplicate=True)
    try:
        with transaction.atomic():
            webhook = InboundWebhook.objects.create(
                partner=partner, webhook_id=webhook_id, event_type=event_type,
                known=event_type in KNOWN_EVENT_TYPES, payload=data,
            )
            if webhook.known:
                partner_event_received.send(
                    sender=InboundWebhook, partner_id=partner.pk, event_type=event_type, data=data,
                    occurred_at=occurred_at or webhook.received_at, webhook_id=webhook_id,
                )
                webhook.processed_at = timezone.now()
                webhook.save(update_fields=["processed_at"])
            _audit(partner, Action.WEBHOOK_RECEIVED, Outcome.SUCCESS,
                   event_type if webhook.known else "unknown_type", webhook_id)
    except EventRefused as refused:
        _audit(partner, Action.WEBHOOK_REJECTED, Outcome.DENIED, refused.code.replace("-", "_"), webhook_id)
        raise
    except IntegrityError:  # the same webhook-id arrived concurrently: the other request handles it
        return Received(InboundWebhook.objects.get(partner=partner, webhook_id=webhook_id), duplicate=True)
    return Received(webhook, duplicate=False)
