"""Outbound client for partner platforms: mTLS with a pinned CA, OAuth2 client credentials
shared through the cache, per-operation timeouts, retries with backoff and jitter for
idempotent operations, a circuit breaker per partner shared by all processes, an audit event
and Prometheus metrics for every call.

    from partners.client import partner_connection_for, delete_face, PartnerUnavailable
    conn = partner_connection_for(partner)
    deleted = delete_face(conn, subject=subject_id, idempotency_key=key)

Modules: `connection` (PartnerConnection, pinned session), `tokens` (shared access token),
`breaker` (shared circuit breaker), `calls` (one call: retries, audit, metrics),
`operations` (the partner contract), `errors`, `metrics`, `audit_log` (reconciliation fetcher).
"""

from partners.client.connection import ClientPolicy, PartnerConnection, partner_connection_for, session_for
from partners.client.errors import (
    CircuitOpen,
    PartnerAuthError,
    PartnerConnectionError,
    PartnerError,
    PartnerRejected,
    PartnerServerError,
    PartnerTimeout,
    PartnerTLSError,
    PartnerUnavailable,
    PartnerUnavailableProblem,
    RateLimited,
)
from partners.client.operations import (
    AllowlistSynced,
    EventSent,
    FaceDeleted,
    FaceEnrolled,
    OpenResult,
    WebRTCSession,
    create_webrtc_session,
    delete_face,
    fetch_audit_log,
    open_device,
    patch_allowlist,
    put_allowlist,
    put_face,
    send_event,
)

__all__ = [
    "AllowlistSynced",
    "CircuitOpen",
    "ClientPolicy",
    "EventSent",
    "FaceDeleted",
    "FaceEnrolled",
    "OpenResult",
    "PartnerAuthError",
    "PartnerConnection",
    "PartnerConnectionError",
    "PartnerError",
    "PartnerRejected",
    "PartnerServerError",
    "PartnerTLSError",
    "PartnerTimeout",
    "PartnerUnavailable",
    "PartnerUnavailableProblem",
    "RateLimited",
    "WebRTCSession",
    "create_webrtc_session",
    "delete_face",
    "fetch_audit_log",
    "open_device",
    "partner_connection_for",
    "patch_allowlist",
    "put_allowlist",
    "put_face",
    "send_event",
    "session_for",
]
