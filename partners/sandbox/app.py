"""The sandbox partner platform behind its TLS listener, independent of sockets.

A request passes, in order: injected latency and hang (every request), the token endpoint,
injected 429/5xx (every /v1 request), bearer-token authentication bound to the connection's
client certificate, routing, the idempotency store, the operation, and the partner's call
log. Requests stopped before the operation (faults, 401, unknown path) are not logged; the
partner "never saw" them - nor are events refused for their signature (401, unauthenticated
too). An ``Idempotency-Key`` repeat (same client, method, path and key)
returns the first reply with ``Idempotent-Replayed: true`` and is not logged again; the
same key with a different body is 422 ``idempotency_key_reused``.
"""

from __future__ import annotations

import hashlib

from .faces import FaceKeys
from .faults import Faults
from .oauth import TOKEN_PATH, ClientRegistry, TokenAuthority, bearer_client, token_endpoint
from .operations import Call, PartnerOperations, call_record
from .routing import ApiError, Reply, Request, Route, Router
from .store import PartnerState, StoredReply

IDEMPOTENCY_KEY_MAX = 64


class PartnerApp:
    def __init__(self, *, clients: ClientRegistry, tokens: TokenAuthority, face_keys: FaceKeys):
        self.clients = clients
        self.tokens = tokens
        self.state = PartnerState()
        self.faults = Faults()
        ops = PartnerOperations(self.state, face_keys)
        self.router = Router(
            [
                Route("POST", "/v1/devices/{device_ref}/open", ops.open_device, "device.open"),
                Route(
                    "POST",
                    "/v1/devices/{device_ref}/webrtc-sessions",
                    ops.start_video_session,
                    "device.webrtc_session",
                ),
                Route("PUT", "/v1/subjects/{subject}/face", ops.enrol_face, "face.enrol"),
                Route("DELETE", "/v1/subjects/{subject}/face", ops.delete_face, "face.delete"),
                Route("PUT", "/v1/sites/{site_ref}/allowlist", ops.replace_allowlist, "allowlist.replace"),
                Route("PATCH", "/v1/sites/{site_ref}/allowlist", ops.patch_allowlist, "allowlist.patch"),
                Route("POST", "/v1/events", ops.receive_event, "event.receive", idempotency_store=False),
                Route("GET", "/v1/audit", ops.read_audit),
            ]
        )

    def handle(self, request: Request) -> Reply | None:
        """The reply to `request`, or None when the connection must be dropped unanswered (hang)."""
        self.faults.delay()
        if self.faults.hold_if_hanging():
            return None
        try:
            if request.path == TOKEN_PATH:
                return self._issue_token(request)
            if not request.path.startswith("/v1/"):
                raise ApiError(404, "not_found")
            failure = self.faults.injected_failure()
            if failure is not None:
                return failure
            expired = self.faults.snapshot().expire_tokens_early
            client_id = bearer_client(request, self.tokens, treat_as_expired=expired)
            route, params = self.router.match(request.method, request.path)
        except ApiError as error:
            return error.reply()
        return self._perform(route, Call(request, params, client_id))

    def _issue_token(self, request: Request) -> Reply:
        reply = token_endpoint(request, self.clients, self.tokens)
        with self.state.lock:
            self.state.tokens_issued += 1
        return reply

    def _perform(self, route: Route, call: Call) -> Reply:
        request = call.request
        key = request.header("Idempotency-Key") if route.idempotency_store else None
        if key is not None and not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
            detail = f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} characters"
            return ApiError(400, "invalid_request", detail).reply()
        slot = (call.client_id, request.method, request.path, key) if key else None
        body_sha256 = hashlib.sha256(request.body).hexdigest()
        with self.state.lock:
            stored = self.state.idempotency.get(slot) if slot else None
            if stored is not None and stored.body_sha256 == body_sha256:
                return stored.reply.with_header("Idempotent-Replayed", "true")
            try:
                if stored is not None:
                    raise ApiError(422, "idempotency_key_reused", "this key was used with another body")
                reply = route.handler(call)
            except ApiError as error:
                reply = error.reply()
            if route.operation and reply.status != 401:
                self.state.calls.append(call_record(call, route.operation, reply))
            if slot and stored is None:
                self.state.idempotency[slot] = StoredReply(body_sha256, reply)
            return reply
