"""The partner contract (DESIGN.md "The partner contract") as typed Python calls.

Which operations are retried (on 5xx, timeouts, connection errors):

=====================  ==========  ===========================================================
operation              retried     why
=====================  ==========  ===========================================================
open_device            no          opening is not idempotent by nature, and a retried open can
                                   open a door seconds after the resident gave up: the caller
                                   gets a fast typed error and the resident taps again
create_webrtc_session  no          a late session nobody watches is waste; same as open
put_face               yes         PUT with an Idempotency-Key; same key, same body
delete_face            yes         DELETE is idempotent; confirmed even if nothing was enrolled
put_allowlist          yes         full replace of a version: idempotent
patch_allowlist        yes         versioned: a replay is refused with 409 (reported as
                                   ``superseded``), never applied twice
send_event             yes         the partner de-duplicates by ``webhook-id`` (a replay is 200,
                                   processed once)
fetch_audit_log        yes         a read
=====================  ==========  ===========================================================

A 401 (one token refresh) and a 429 within the wait budget are repeated for every operation:
the partner refused those before doing anything. Every request carries ``X-Request-ID`` and
``Idempotency-Key``; bodies that go through the outbox are byte-identical on redelivery.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import uuid
from dataclasses import dataclass
from urllib.parse import quote

from standardwebhooks import Webhook

from audit.actions import Action, ActorKind, Outcome
from partners.client.calls import AuditContext, CallSpec, Exchange, perform
from partners.client.connection import PartnerConnection
from partners.client.errors import PartnerRejected

OPEN = CallSpec("open", Action.PARTNER_OPEN, idempotent=False)
WEBRTC_SESSION = CallSpec("webrtc_session", Action.PARTNER_WEBRTC_SESSION, idempotent=False)
FACE_ENROL = CallSpec("face_enrol", Action.PARTNER_FACE_ENROL, idempotent=True)
FACE_DELETE = CallSpec("face_delete", Action.PARTNER_FACE_DELETE, idempotent=True)
ALLOWLIST_FULL = CallSpec("allowlist_full", Action.PARTNER_ALLOWLIST_FULL, idempotent=True)
ALLOWLIST_DELTA = CallSpec("allowlist_delta", Action.PARTNER_ALLOWLIST_DELTA, idempotent=True)
EVENT_OUT = CallSpec("event_out", Action.PARTNER_EVENT_OUT, idempotent=True)
AUDIT_LOG = CallSpec("audit", None, idempotent=True)

_OPEN_OUTCOMES = {"opened": Outcome.SUCCESS, "denied": Outcome.DENIED, "offline": Outcome.UNAVAILABLE}


@dataclass(frozen=True)
class OpenResult:
    result: str  # opened | denied | offline
    request_id: str
    attempts: int

    @property
    def opened(self) -> bool:
        return self.result == "opened"


@dataclass(frozen=True)
class WebRTCSession:
    session_id: str
    sdp: str
    ice_servers: list
    expires_at: str
    request_id: str


@dataclass(frozen=True)
class FaceEnrolled:
    subject: str
    image_sha256: str
    request_id: str
    attempts: int
    replayed: bool


@dataclass(frozen=True)
class FaceDeleted:
    subject: str
    deletion_id: str
    request_id: str
    attempts: int
    replayed: bool


@dataclass(frozen=True)
class AllowlistSynced:
    site_ref: str
    version: int
    entries: int | None
    request_id: str
    attempts: int
    superseded: bool = False  # the partner already holds this or a newer version


@dataclass(frozen=True)
class EventSent:
    webhook_id: str
    request_id: str
    attempts: int
    duplicate: bool  # the partner had already accepted this webhook-id


def _replayed(exchange: Exchange) -> bool:
    return exchange.headers.get("Idempotent-Replayed", "").lower() == "true"


def _segment(value: str) -> str:
    return quote(value, safe="")


def _caused_by(actor_ref: str, origin_request_id: str | None) -> dict:
    return {"actor_kind": ActorKind.RESIDENT, "actor_ref": actor_ref, "origin_request_id": origin_request_id}


def open_device(
    conn: PartnerConnection,
    *,
    device_ref: str,
    subject: str,
    request_id: str,
    company_id: int | None = None,
    building_id: int | None = None,
    actor_ref: str = "",
    origin_request_id: str | None = None,
) -> OpenResult:
    """``POST /v1/devices/{device_ref}/open``. Not retried (see the module docstring).

    `actor_ref` (the resident's pseudonymous ref) and `origin_request_id` (the resident's
    request) go to the call's audit event, beside the partner request id."""
    exchange = perform(
        conn, OPEN, "POST", f"/v1/devices/{_segment(device_ref)}/open",
        body={"request_id": request_id, "subject": subject},
        request_id=request_id,
        context=AuditContext(device_ref=device_ref, company_id=company_id, building_id=building_id,
                             **_caused_by(actor_ref, origin_request_id)),
        outcome_of=lambda ex: _OPEN_OUTCOMES.get((ex.body or {}).get("result"), Outcome.FAILURE),
    )
    return OpenResult(result=str((exchange.body or {}).get("result", "")), request_id=request_id,
                      attempts=exchange.attempts)


def create_webrtc_session(
    conn: PartnerConnection,
    *,
    device_ref: str,
    subject: str,
    request_id: str,
    sdp_offer: str | None = None,
    company_id: int | None = None,
    building_id: int | None = None,
    actor_ref: str = "",
    origin_request_id: str | None = None,
) -> WebRTCSession:
    """``POST /v1/devices/{device_ref}/webrtc-sessions``: the partner's SDP answer and ICE servers
    (`actor_ref`, `origin_request_id`: as for `open_device`)."""
    body = {"request_id": request_id, "subject": subject}
    if sdp_offer:
        body["sdp_offer"] = sdp_offer
    exchange = perform(
        conn, WEBRTC_SESSION, "POST", f"/v1/devices/{_segment(device_ref)}/webrtc-sessions",
        body=body, request_id=request_id,
        context=AuditContext(device_ref=device_ref, company_id=company_id, building_id=building_id,
                             **_caused_by(actor_ref, origin_request_id)),
    )
    data = exchange.body or {}
    return WebRTCSession(
        session_id=data.get("session_id", ""), sdp=data.get("sdp", ""), ice_servers=data.get("ice_servers", []),
        expires_at=data.get("expires_at", ""), request_id=request_id,
    )


def put_face(
    conn: PartnerConnection,
    *,
    subject: str,
    jwe: str,
    consent_ref: str,
    retention_until: datetime.datetime | str,
    idempotency_key: str,
) -> FaceEnrolled:
    """``PUT /v1/subjects/{subject}/face`` with the photo as a JWE only the partner can open.

    The request id is the idempotency key, so a redelivery sends the same body.
    """
    if isinstance(retention_until, datetime.datetime):
        retention_until = retention_until.isoformat()
    exchange = perform(
        conn, FACE_ENROL, "PUT", f"/v1/subjects/{_segment(subject)}/face",
        body={"jwe": jwe, "consent_ref": consent_ref, "retention_until": retention_until,
              "request_id": idempotency_key},
        request_id=idempotency_key, idempotency_key=idempotency_key,
        context=AuditContext(object_type="subject", object_ref=_ref(subject)),
    )
    data = exchange.body or {}
    return FaceEnrolled(subject=subject, image_sha256=data.get("image_sha256", ""), request_id=idempotency_key,
                        attempts=exchange.attempts, replayed=_replayed(exchange))


def delete_face(conn: PartnerConnection, *, subject: str, idempotency_key: str) -> FaceDeleted:
    """``DELETE /v1/subjects/{subject}/face``: the partner confirms with a deletion id."""
    exchange = perform(
        conn, FACE_DELETE, "DELETE", f"/v1/subjects/{_segment(subject)}/face",
        request_id=idempotency_key, idempotency_key=idempotency_key,
        context=AuditContext(object_type="subject", object_ref=_ref(subject)),
    )
    return FaceDeleted(subject=subject, deletion_id=exchange.headers.get("X-Deletion-Id", ""),
                       request_id=idempotency_key, attempts=exchange.attempts, replayed=_replayed(exchange))


def put_allowlist(
    conn: PartnerConnection, *, site_ref: str, version: int, entries: list[dict], idempotency_key: str | None = None
) -> AllowlistSynced:
    """``PUT /v1/sites/{site_ref}/allowlist``: full replace; an older version than the partner's is
    reported as ``superseded`` (409 version_conflict), not as an error."""
    return _allowlist(conn, ALLOWLIST_FULL, "PUT", site_ref, {"version": version, "entries": entries},
                      version, idempotency_key)


def patch_allowlist(
    conn: PartnerConnection,
    *,
    site_ref: str,
    version: int,
    upserts: list[dict] = (),
    removals: list[dict] = (),
    idempotency_key: str | None = None,
) -> AllowlistSynced:
    """``PATCH /v1/sites/{site_ref}/allowlist`` ``{version, upserts, removals}``; must be newer."""
    body = {"version": version, "upserts": list(upserts), "removals": list(removals)}
    return _allowlist(conn, ALLOWLIST_DELTA, "PATCH", site_ref, body, version, idempotency_key)


def _allowlist(conn, spec, method, site_ref, body, version, idempotency_key) -> AllowlistSynced:
    key = idempotency_key or uuid.uuid4().hex
    try:
        exchange = perform(
            conn, spec, method, f"/v1/sites/{_segment(site_ref)}/allowlist", body=body,
            request_id=key, idempotency_key=key, context=AuditContext(object_type="site", object_ref=_ref(site_ref)),
        )
    except PartnerRejected as error:
        if error.http_status == 409 and error.error_code == "version_conflict":
            return AllowlistSynced(site_ref=site_ref, version=version, entries=None, request_id=key,
                                   attempts=error.attempts, superseded=True)
        raise
    data = exchange.body or {}
    return AllowlistSynced(site_ref=site_ref, version=int(data.get("version", version)), entries=data.get("entries"),
                           request_id=key, attempts=exchange.attempts)


def send_event(
    conn: PartnerConnection,
    *,
    webhook_id: str,
    event: dict,
    secrets: list[str],
    timestamp: datetime.datetime | None = None,
) -> EventSent:
    """``POST /v1/events``: `event` (``{type, timestamp, data}``) signed per Standard Webhooks.

    Headers ``webhook-id`` (stable per event: retries are de-duplicated by the partner),
    ``webhook-timestamp`` (now, unless `timestamp`) and ``webhook-signature``: one ``v1,``
    signature per secret in `secrets` (the current one first, then those still valid during a
    rotation), computed over the exact bytes sent. A refused signature is a 401
    (PartnerAuthError after one token refresh).
    """
    if not secrets:
        raise ValueError("an event needs at least one signing secret")
    signed_at = timestamp or datetime.datetime.now(datetime.UTC)

    def signed_headers(body: bytes) -> dict[str, str]:
        text = body.decode()
        signatures = " ".join(Webhook(secret).sign(webhook_id, signed_at, text) for secret in secrets)
        return {"webhook-id": webhook_id, "webhook-timestamp": str(int(signed_at.timestamp())),
                "webhook-signature": signatures}

    exchange = perform(
        conn, EVENT_OUT, "POST", "/v1/events", body=event, request_id=webhook_id, idempotency_key=webhook_id,
        context=AuditContext(object_type="event", object_ref=_ref(webhook_id)), signed_headers=signed_headers,
    )
    data = exchange.body or {}
    return EventSent(webhook_id=webhook_id, request_id=webhook_id, attempts=exchange.attempts,
                     duplicate=bool(data.get("duplicate")))


def fetch_audit_log(
    conn: PartnerConnection, *, since: datetime.datetime | None = None, url: str | None = None
) -> list[dict]:
    """``GET /v1/audit?since=`` (or the partner's own audit-log `url`): its log of our calls, oldest first."""
    params = {"since": since.isoformat()} if since else None
    exchange = perform(conn, AUDIT_LOG, "GET", url or "/v1/audit", params=params)
    return list((exchange.body or {}).get("entries", []))


def _ref(value: str) -> str:
    """`value` if it fits the audit log's ref format, else a short digest of it."""
    if re.fullmatch(r"[A-Za-z0-9:._-]{1,64}", value):
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:32]
