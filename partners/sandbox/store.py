"""The sandbox partner's in-memory state: devices, enrolled faces, deletions, allowlists,
video sessions, arrivals, events it sent us and events it accepted from us (with the secrets it
verifies them with), the plate-token key it uses, its log of our calls and its idempotency store.

One re-entrant lock (`PartnerState.lock`) guards everything; callers hold it for the whole of
an operation, so an idempotency check, the operation and its log entry are atomic.
Only what a real partner would keep is stored: for a face, a hash and size of the decrypted
image, never the image.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
from dataclasses import dataclass, field

from partners.key_material import fingerprint

from .routing import Reply


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Device:
    ref: str
    online: bool = True
    # A device in lockdown refuses to open: the partner answers "denied".
    lockdown: bool = False


@dataclass
class FaceRecord:
    subject: str
    image_sha256: str
    image_size: int
    consent_ref: str
    retention_until: str
    enrolled_at: str


@dataclass
class Deletion:
    deletion_id: str
    subject: str
    had_face: bool
    at: str


@dataclass
class Allowlist:
    version: int
    # (type, token) -> entry as received, validated
    entries: dict[tuple[str, str], dict] = field(default_factory=dict)


@dataclass
class VideoSession:
    session_id: str
    device_ref: str
    subject: str
    expires_at: str


@dataclass
class Arrival:
    """A car or person at one of the partner's devices, and who decided (see `smarthome_link`)."""

    request_id: str
    device_ref: str
    credential_type: str
    decision: str
    source: str
    at: str


@dataclass
class SentEvent:
    webhook_id: str
    type: str
    http_status: int
    at: str


@dataclass
class ReceivedEvent:
    """An event we sent the partner (``POST /v1/events``), accepted after its signature verified."""

    webhook_id: str
    type: str
    timestamp: str | None
    data: dict
    received_at: str
    deliveries: int = 1  # how often it arrived; processed once


@dataclass
class CallRecord:
    """One of our calls as the partner saw it (what ``GET /v1/audit`` returns)."""

    client_id: str
    request_id: str | None
    operation: str
    device_ref: str | None
    subject: str | None
    result: str | None
    http_status: int
    at: datetime.datetime

    def as_entry(self) -> dict:
        entry = dataclasses.asdict(self)
        del entry["client_id"]
        entry["at"] = rfc3339(self.at)
        return entry


@dataclass
class StoredReply:
    body_sha256: str
    reply: Reply


@dataclass
class PartnerState:
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    devices: dict[str, Device] = field(default_factory=dict)
    faces: dict[str, FaceRecord] = field(default_factory=dict)
    deletions: list[Deletion] = field(default_factory=list)
    allowlists: dict[str, Allowlist] = field(default_factory=dict)
    video_sessions: list[VideoSession] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)
    events_sent: list[SentEvent] = field(default_factory=list)
    # our events, by webhook-id (a repeat is acknowledged, not processed again)
    events_received: dict[str, ReceivedEvent] = field(default_factory=dict)
    # Standard Webhooks secrets our events must be signed with (set through the control API)
    event_secrets: list[str] = field(default_factory=list, repr=False)
    # (credentials version, key) of the plate-token key its cameras tokenise plates with: the
    # newest key material it was handed (keyring.py)
    plate_key: tuple[int, bytes] | None = field(default=None, repr=False)
    calls: list[CallRecord] = field(default_factory=list)
    # (client_id, method, path, Idempotency-Key) -> the reply first given
    idempotency: dict[tuple[str, str, str, str], StoredReply] = field(default_factory=dict)
    tokens_issued: int = 0

    def reset(self) -> None:
        with self.lock:
            fresh = PartnerState()
            for f in dataclasses.fields(self):
                if f.name != "lock":
                    setattr(self, f.name, getattr(fresh, f.name))

    def calls_since(self, since: datetime.datetime | None, client_id: str | None = None) -> list[CallRecord]:
        with self.lock:
            return [
                c
                for c in self.calls
                if (since is None or c.at >= since) and (client_id is None or c.client_id == client_id)
            ]

    def snapshot(self) -> dict:
        """Everything but the call log, as JSON-ready data (for the control API)."""
        with self.lock:
            return {
                "devices": {
                    ref: {"online": d.online, "lockdown": d.lockdown} for ref, d in self.devices.items()
                },
                "faces": {
                    subject: {k: v for k, v in dataclasses.asdict(face).items() if k != "subject"}
                    for subject, face in self.faces.items()
                },
                "deletions": [dataclasses.asdict(d) for d in self.deletions],
                "allowlists": {
                    site: {"version": a.version, "entries": list(a.entries.values())}
                    for site, a in self.allowlists.items()
                },
                "video_sessions": [dataclasses.asdict(s) for s in self.video_sessions],
                "arrivals": [dataclasses.asdict(a) for a in self.arrivals],
                "events_sent": [dataclasses.asdict(e) for e in self.events_sent],
                "events_received": [dataclasses.asdict(e) for e in self.events_received.values()],
                "tokens_issued": self.tokens_issued,
                "plate_key": None if self.plate_key is None else {
                    "credentials_version": self.plate_key[0], "fingerprint": fingerprint(self.plate_key[1]),
                },
            }
