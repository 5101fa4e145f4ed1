"""What each outbox operation does at the partner: a registry keyed by operation name.

A handler gets the partner connection and the message and returns a small summary of the
partner's acknowledgement (it goes to `OutboxMessage.result` and the `outbox_delivered`
signal). It raises the client's typed errors; the delivery service decides what they mean.
Payloads (pseudonymous ids and tokens only; a face's JWE until acknowledged):

================  ===================================================================
face_put          ``{subject, jwe, consent_ref, retention_until}``
face_delete       ``{subject}``
allowlist_put     ``{site_ref, version, entries}``
allowlist_patch   ``{site_ref, version, upserts, removals}``
event_out         ``{type, timestamp, data}`` - the event body (partners.outbound_events);
                  the message's idempotency key is its ``webhook-id``
================  ===================================================================
"""

from __future__ import annotations

from collections.abc import Callable

from partners.client import (
    PartnerConnection,
    delete_face,
    patch_allowlist,
    put_allowlist,
    put_face,
    send_event,
)
from partners.selectors import webhook_secrets

Handler = Callable[[PartnerConnection, object], dict]

HANDLERS: dict[str, Handler] = {}
# Payload fields that are personal data, emptied as soon as the partner has acknowledged.
PURGED_AFTER_ACK: dict[str, tuple[str, ...]] = {"face_put": ("jwe",)}
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {}


def handler(name: str, *, required: tuple[str, ...]):
    def register(func: Handler) -> Handler:
        HANDLERS[name] = func
        REQUIRED_FIELDS[name] = required
        return func

    return register


@handler("face_put", required=("subject", "jwe", "consent_ref", "retention_until"))
def _face_put(conn: PartnerConnection, message) -> dict:
    p = message.payload
    enrolled = put_face(conn, subject=p["subject"], jwe=p["jwe"], consent_ref=p["consent_ref"],
                        retention_until=p["retention_until"], idempotency_key=message.idempotency_key)
    return {"image_sha256": enrolled.image_sha256, "replayed": enrolled.replayed}


@handler("face_delete", required=("subject",))
def _face_delete(conn: PartnerConnection, message) -> dict:
    deleted = delete_face(conn, subject=message.payload["subject"], idempotency_key=message.idempotency_key)
    return {"deletion_id": deleted.deletion_id, "replayed": deleted.replayed}


@handler("allowlist_put", required=("site_ref", "version", "entries"))
def _allowlist_put(conn: PartnerConnection, message) -> dict:
    p = message.payload
    synced = put_allowlist(conn, site_ref=p["site_ref"], version=p["version"], entries=p["entries"],
                           idempotency_key=message.idempotency_key)
    return {"version": synced.version, "entries": synced.entries, "superseded": synced.superseded}


@handler("allowlist_patch", required=("site_ref", "version"))
def _allowlist_patch(conn: PartnerConnection, message) -> dict:
    p = message.payload
    synced = patch_allowlist(conn, site_ref=p["site_ref"], version=p["version"], upserts=p.get("upserts", []),
                             removals=p.get("removals", []), idempotency_key=message.idempotency_key)
    return {"version": synced.version, "entries": synced.entries, "superseded": synced.superseded}


@handler("event_out", required=("type", "timestamp", "data"))
def _event_out(conn: PartnerConnection, message) -> dict:
    secrets = webhook_secrets(partner_id=message.partner_id, direction="outbound")
    if not secrets:
        raise LookupError("the partner has no outbound webhook secret")
    sent = send_event(conn, webhook_id=message.idempotency_key, event=message.payload, secrets=secrets)
    return {"webhook_id": sent.webhook_id, "duplicate": sent.duplicate}
