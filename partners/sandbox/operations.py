"""The partner's /v1 operations - the contract of DESIGN.md "The partner contract".

Every method takes a `Call` and returns a `Reply` (or raises `ApiError`); the caller
(`PartnerApp`) holds `PartnerState.lock` around it. ``Reply.result`` is the outcome word the
partner writes to its call log.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
import uuid
from dataclasses import dataclass

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from .faces import FaceKeys, PhotoTooLarge, Undecryptable
from .routing import ApiError, Reply, Request
from .store import (
    Allowlist,
    CallRecord,
    Deletion,
    Device,
    FaceRecord,
    PartnerState,
    ReceivedEvent,
    VideoSession,
    rfc3339,
    utc_now,
)

VIDEO_SESSION_TTL = datetime.timedelta(minutes=2)
ALLOWLIST_TYPES = ("plate", "face")
ICE_SERVERS = [
    {"urls": ["stun:stun.sandbox.invalid:3478"]},
    {"urls": ["turn:turn.sandbox.invalid:3478?transport=udp", "turns:turn.sandbox.invalid:5349"]},
]


@dataclass
class Call:
    request: Request
    params: dict[str, str]
    client_id: str


class PartnerOperations:
    def __init__(self, state: PartnerState, face_keys: FaceKeys):
        self.state = state
        self.face_keys = face_keys

    def open_device(self, call: Call) -> Reply:
        """``POST /v1/devices/{device_ref}/open`` -> 200 ``{result: opened|denied|offline, request_id}``."""
        request_id = _required_str(call.request, "request_id")
        _required_str(call.request, "subject")
        device = self._device(call.params["device_ref"])
        if not device.online:
            result = "offline"
        elif device.lockdown:
            result = "denied"
        else:
            result = "opened"
        return Reply(200, {"result": result, "request_id": request_id}, result=result)

    def start_video_session(self, call: Call) -> Reply:
        """``POST /v1/devices/{device_ref}/webrtc-sessions`` -> 201 with an SDP answer and ICE servers."""
        _required_str(call.request, "request_id")
        subject = _required_str(call.request, "subject")
        offer = call.request.json.get("sdp_offer")
        if offer is not None and not (isinstance(offer, str) and offer.startswith("v=0")):
            raise ApiError(400, "invalid_request", "sdp_offer must be an SDP text starting with v=0")
        device = self._device(call.params["device_ref"])
        if not device.online:
            raise ApiError(409, "device_offline")
        session = VideoSession(
            session_id=str(uuid.uuid4()),
            device_ref=device.ref,
            subject=subject,
            expires_at=rfc3339(utc_now() + VIDEO_SESSION_TTL),
        )
        self.state.video_sessions.append(session)
        turn_credentials = {"username": session.session_id, "credential": secrets.token_urlsafe(18)}
        ice_servers = [ICE_SERVERS[0], {**ICE_SERVERS[1], **turn_credentials}]
        body = {
            "session_id": session.session_id,
            "sdp": _sdp_answer(),
            "ice_servers": ice_servers,
            "expires_at": session.expires_at,
        }
        return Reply(201, body, result="created")

    def enrol_face(self, call: Call) -> Reply:
        """``PUT /v1/subjects/{subject}/face`` ``{jwe, consent_ref, retention_until, request_id}`` -> 202.

        Keeps the SHA-256 and size of the decrypted image, never the image; 422 ``undecryptable``.
        """
        request_id = _required_str(call.request, "request_id")
        compact = _required_str(call.request, "jwe")
        consent_ref = _required_str(call.request, "consent_ref")
        retention_until = _required_time(call.request, "retention_until")
        if retention_until <= utc_now():
            raise ApiError(400, "invalid_request", "retention_until must be in the future")
        try:
            image = self.face_keys.decrypt(compact)
        except PhotoTooLarge as error:
            raise ApiError(422, "undecryptable", str(error)) from None
        except Undecryptable:
            raise ApiError(422, "undecryptable") from None
        subject = call.params["subject"]
        record = FaceRecord(
            subject=subject,
            image_sha256=hashlib.sha256(image).hexdigest(),
            image_size=len(image),
            consent_ref=consent_ref,
            retention_until=rfc3339(retention_until),
            enrolled_at=rfc3339(utc_now()),
        )
        self.state.faces[subject] = record
        body = {"subject": subject, "request_id": request_id, "image_sha256": record.image_sha256}
        return Reply(202, body, result="enrolled")

    def delete_face(self, call: Call) -> Reply:
        """``DELETE /v1/subjects/{subject}/face`` -> 204 + ``X-Deletion-Id``, even if none was enrolled."""
        subject = call.params["subject"]
        deletion = Deletion(
            deletion_id=str(uuid.uuid4()),
            subject=subject,
            had_face=self.state.faces.pop(subject, None) is not None,
            at=rfc3339(utc_now()),
        )
        self.state.deletions.append(deletion)
        return Reply(204, None, {"X-Deletion-Id": deletion.deletion_id}, result="deleted")

    def replace_allowlist(self, call: Call) -> Reply:
        """``PUT /v1/sites/{site_ref}/allowlist`` ``{version, entries}``: full replace; 409 if older."""
        version = _version(call.request)
        entries = _entries(call.request.json.get("entries"), "entries")
        site_ref = call.params["site_ref"]
        current = self.state.allowlists.get(site_ref)
        if current is not None and version < current.version:
            raise _version_conflict(current)
        allowlist = Allowlist(version, {(e["type"], e["token"]): e for e in entries})
        self.state.allowlists[site_ref] = allowlist
        return _allowlist_reply(site_ref, allowlist, "replaced")

    def patch_allowlist(self, call: Call) -> Reply:
        """``PATCH /v1/sites/{site_ref}/allowlist`` ``{version, upserts, removals}``; 409 unless newer."""
        version = _version(call.request)
        upserts = _entries(call.request.json.get("upserts", []), "upserts")
        removals = _removals(call.request.json.get("removals", []))
        site_ref = call.params["site_ref"]
        current = self.state.allowlists.get(site_ref) or Allowlist(version=0)
        if version <= current.version:
            raise _version_conflict(current)
        entries = dict(current.entries)
        for key in removals:
            entries.pop(key, None)
        entries.update({(e["type"], e["token"]): e for e in upserts})
        allowlist = Allowlist(version, entries)
        self.state.allowlists[site_ref] = allowlist
        return _allowlist_reply(site_ref, allowlist, "patched")

    def receive_event(self, call: Call) -> Reply:
        """``POST /v1/events`` ``{type, timestamp, data}`` signed per Standard Webhooks -> 200
        ``{webhook_id, duplicate}``.

        401 ``invalid_signature`` / ``stale_timestamp`` / ``missing_headers`` / ``no_secret``
        unless one of the configured secrets signed ``webhook-id.webhook-timestamp.body`` within
        5 minutes; a ``webhook-id`` seen before is acknowledged and not processed again.
        """
        request = call.request
        _verify_signature(self.state.event_secrets, request)
        webhook_id = request.header("webhook-id")
        seen = self.state.events_received.get(webhook_id)
        if seen is not None:
            seen.deliveries += 1
            return Reply(200, {"webhook_id": webhook_id, "duplicate": True}, result="duplicate")
        event_type = _required_str(request, "type")
        data = request.json.get("data", {})
        if not isinstance(data, dict):
            raise ApiError(400, "invalid_request", "data must be an object")
        self.state.events_received[webhook_id] = ReceivedEvent(
            webhook_id=webhook_id, type=event_type, timestamp=request.json_str("timestamp"), data=data,
            received_at=rfc3339(utc_now()),
        )
        return Reply(200, {"webhook_id": webhook_id, "duplicate": False}, result="accepted")

    def read_audit(self, call: Call) -> Reply:
        """``GET /v1/audit?since=<RFC3339>`` -> the caller's calls at or after `since`, oldest first."""
        since_values = call.request.query.get("since")
        since = _parse_time(since_values[-1], "since") if since_values else None
        records = self.state.calls_since(since, client_id=call.client_id)
        return Reply(200, {"entries": [r.as_entry() for r in records]})

    def _device(self, device_ref: str) -> Device:
        device = self.state.devices.get(device_ref)
        if device is None:
            raise ApiError(404, "unknown_device")
        return device


def call_record(call: Call, operation: str, reply: Reply) -> CallRecord:
    """The partner's log entry for `call` answered with `reply`."""
    return CallRecord(
        client_id=call.client_id,
        request_id=call.request.json_str("request_id") or call.request.header("X-Request-Id"),
        operation=operation,
        device_ref=call.params.get("device_ref"),
        subject=call.params.get("subject") or call.request.json_str("subject"),
        result=reply.result,
        http_status=reply.status,
        at=utc_now(),
    )


def _verify_signature(secrets: list[str], request: Request) -> None:
    if not secrets:
        raise ApiError(401, "no_secret", "no event secret configured (PUT /_control/smarthome)")
    headers = {name.lower(): value for name, value in request.headers.items()}
    reason = "invalid_signature"
    for secret in secrets:
        try:
            Webhook(secret).verify(request.body, headers, json_parse=False)
            return
        except WebhookVerificationError as error:
            text = str(error).lower()
            if "too old" in text or "too new" in text:
                reason = "stale_timestamp"
            elif "missing" in text:
                reason = "missing_headers"
        except (ValueError, UnicodeDecodeError):
            pass
    raise ApiError(401, reason)


def _required_str(request: Request, name: str) -> str:
    value = request.json.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError(400, "invalid_request", f"{name} is required (a non-empty string)")
    return value


def _parse_time(value: object, name: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ApiError(400, "invalid_request", f"{name} must be an RFC 3339 time with an offset")
    return moment


def _required_time(request: Request, name: str) -> datetime.datetime:
    return _parse_time(_required_str(request, name), name)


def _version(request: Request) -> int:
    version = request.json.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ApiError(400, "invalid_request", "version must be a non-negative integer")
    return version


def _entries(value, name: str) -> list[dict]:
    if not isinstance(value, list):
        raise ApiError(400, "invalid_request", f"{name} must be a list")
    entries = []
    for item in value:
        entry = _entry_key(item, name)
        refs = item.get("device_refs")
        if not isinstance(refs, list) or not all(isinstance(r, str) and r for r in refs):
            raise ApiError(400, "invalid_request", f"{name}: device_refs must be a list of device refs")
        entry["device_refs"] = refs
        for bound in ("valid_from", "valid_until"):
            if item.get(bound) is not None:
                entry[bound] = rfc3339(_parse_time(item[bound], f"{name}: {bound}"))
        entries.append(entry)
    return entries


def _removals(value) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        raise ApiError(400, "invalid_request", "removals must be a list")
    return [(e["type"], e["token"]) for e in (_entry_key(item, "removals") for item in value)]


def _entry_key(item, name: str) -> dict:
    if not isinstance(item, dict) or item.get("type") not in ALLOWLIST_TYPES:
        raise ApiError(400, "invalid_request", f"{name}: each entry needs type plate or face")
    if not isinstance(item.get("token"), str) or not item["token"]:
        raise ApiError(400, "invalid_request", f"{name}: each entry needs a token")
    return {"type": item["type"], "token": item["token"]}


def _version_conflict(current: Allowlist) -> ApiError:
    return ApiError(409, "version_conflict", f"current version is {current.version}")


def _allowlist_reply(site_ref: str, allowlist: Allowlist, result: str) -> Reply:
    body = {"site_ref": site_ref, "version": allowlist.version, "entries": len(allowlist.entries)}
    return Reply(200, body, result=result)


def _sdp_answer() -> str:
    """A well-formed SDP answer: the device sends video and audio, the app only receives."""
    session_number = secrets.randbelow(2**62)
    fingerprint = ":".join(f"{b:02X}" for b in secrets.token_bytes(32))
    ice = f"a=ice-ufrag:{secrets.token_hex(4)}\r\na=ice-pwd:{secrets.token_hex(12)}\r\n"
    media = (
        ("video", "96", "a=rtpmap:96 H264/90000\r\n"),
        ("audio", "111", "a=rtpmap:111 opus/48000/2\r\n"),
    )
    lines = (
        "v=0\r\n"
        f"o=sandbox-partner {session_number} 2 IN IP4 127.0.0.1\r\n"
        "s=-\r\n"
        "t=0 0\r\n"
        "a=group:BUNDLE 0 1\r\n"
        f"a=fingerprint:sha-256 {fingerprint}\r\n"
    )
    for mid, (kind, payload, rtpmap) in enumerate(media):
        lines += (
            f"m={kind} 9 UDP/TLS/RTP/SAVPF {payload}\r\n"
            "c=IN IP4 0.0.0.0\r\n"
            f"a=mid:{mid}\r\n"
            "a=sendonly\r\n"
            "a=rtcp-mux\r\n"
            "a=setup:passive\r\n"
            f"{ice}{rtpmap}"
        )
    return lines
