"""Events we send to a partner (`POST /v1/events` at the partner), signed per Standard Webhooks.

They travel through the transactional outbox (operation ``event_out``, ordering key
``events``: in order per partner), so an event commits or rolls back with the change that
caused it and reaches the partner at least once. The message's idempotency key is the event's
``webhook-id``: every redelivery carries the same id and the partner processes it once.

Event types and their `data` (codes, pseudonymous ids and tokens only - never personal data;
`partner_event_enqueue` refuses any other key or a value that is not a short code):

=====================  =========================================  ================================
type                   data                                       sent when
=====================  =========================================  ================================
``allowlist.changed``  ``{site_ref, version}``                    an allowlist message (full or
                                                                  patch) for that site is enqueued
``subject.revoked``    ``{subject_id, reason}``                   a face consent is revoked
                                                                  (reason: resident, expired,
                                                                  move_out, ...)
``security.alert``     ``{alert_id, kind, partner_suspended}``    a security alert about the
                                                                  partner, if configured
=====================  =========================================  ================================

Signing secrets: the partner's current ``outbound_webhook_secret`` and, during a rotation, those
of credentials revoked less than WEBHOOK_PREVIOUS_SECRET_GRACE_S ago (one signature each).
"""

from __future__ import annotations

import datetime
import re
import uuid

from django.db import transaction
from django.utils import timezone

from partners.models import OutboxMessage
from partners.outbox.services import outbox_enqueue

EVENT_TYPES = frozenset({"allowlist.changed", "subject.revoked", "security.alert"})
# The only keys an event's data may carry (all pseudonymous ids, tokens, codes or counters).
DATA_KEYS = frozenset({"site_ref", "version", "subject_id", "reason", "alert_id", "kind", "partner_suspended"})
EVENTS_ORDERING_KEY = "events"
_CODE = re.compile(r"^[A-Za-z0-9:._+-]{0,128}$")


def _checked_data(event_type: str, data: dict) -> dict:
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown outbound event type {event_type!r}")
    unknown = set(data) - DATA_KEYS
    if unknown:
        raise ValueError(f"event data may not carry {', '.join(sorted(unknown))}")
    for key, value in data.items():
        if isinstance(value, bool | int) or (isinstance(value, str) and _CODE.match(value)):
            continue
        raise ValueError(f"event data {key!r} must be a short code, a number or a boolean")
    return dict(data)


@transaction.atomic
def partner_event_enqueue(*, partner_id: int, event_type: str, data: dict) -> OutboxMessage:
    """Queue event `event_type` with `data` for the partner (outbox ``event_out``), in the
    caller's transaction.

    Checks: a known type (EVENT_TYPES) and data made of the allowed keys (DATA_KEYS) with code,
    number or boolean values only (ValueError otherwise - this is what keeps personal data out).
    The payload is the event body ``{type, timestamp, data}``; its idempotency key
    ``evt_<uuid>`` is the webhook-id. The delivery records ``partner.event_out``.
    """
    body = {
        "type": event_type,
        "timestamp": timezone.now().astimezone(datetime.UTC).isoformat(timespec="milliseconds"),
        "data": _checked_data(event_type, data),
    }
    return outbox_enqueue(partner_id=partner_id, operation="event_out", ordering_key=EVENTS_ORDERING_KEY,
                          payload=body, idempotency_key=f"evt_{uuid.uuid4().hex}")
