"""One logical call to a partner: token, breaker, timeouts, retries, audit event, metrics.

`perform(conn, spec, ...)` runs attempts until one succeeds or the policy says stop:

- every attempt carries ``X-Request-ID`` (the same for all attempts of a call, so the partner's
  log and ours match by it) and ``Idempotency-Key``;
- a 401 invalidates the cached token and the call is repeated once with a fresh one (the
  partner refused before doing anything, so this is safe for every operation);
- a 429 is waited out when its ``Retry-After`` fits in `rate_limit_max_wait_s`, else RateLimited;
- 5xx, timeouts and connection errors are retried with exponential backoff and full jitter -
  only for idempotent operations (`CallSpec.idempotent`);
- each attempt runs under the partner's circuit breaker; an open breaker fails fast; a call that
  ends with the partner unavailable carries the breaker's idea of when to try again
  (`breaker.retry_after_s`: the rest of its recovery time, or a share of it while closed);
- one audit event per call (outcome, reason code, last HTTP status, total latency, request
  id), Prometheus metrics per attempt. Neither ever holds a token, a body or personal data.
"""

from __future__ import annotations

import json
import math
import random
import ssl
import time
import uuid
from dataclasses import dataclass, field

import requests

from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from core.http.request_context import current_origin_request_id
from partners.client import metrics, tokens
from partners.client.breaker import failure_retry_after_s, guarded
from partners.client.connection import PartnerConnection, session_for
from partners.client.errors import (
    PartnerAuthError,
    PartnerConnectionError,
    PartnerError,
    PartnerRejected,
    PartnerServerError,
    PartnerTimeout,
    PartnerTLSError,
    PartnerUnavailable,
    RateLimited,
)


@dataclass(frozen=True)
class CallSpec:
    operation: str  # metrics label and timeout key, e.g. "face_delete"
    action: Action | None  # audit action; None: the call is not audited (reading the partner's log)
    idempotent: bool


@dataclass
class Exchange:
    """What came back: the final response and how we got it."""

    status: int
    body: dict | None
    headers: dict[str, str]
    request_id: str
    attempts: int
    latency_ms: float


@dataclass
class AuditContext:
    """Who/what the call is about, for its audit event (pseudonymous refs and ids only).

    `actor_ref` names whoever caused the call (a resident's pseudonymous ref; empty: the system)
    and `origin_request_id` the request that caused it (default: the request being served, if
    any) - so the partner-call event alone answers "who caused this call".
    """

    device_ref: str = ""
    object_type: str = ""
    object_ref: str = ""
    company_id: int | None = None
    building_id: int | None = None
    actor_kind: ActorKind = ActorKind.SYSTEM
    actor_ref: str = ""
    origin_request_id: str | None = None
    extra: dict = field(default_factory=dict)


class _TokenRefused(PartnerAuthError):
    """401 on an API call: internal, turns into one refresh-and-retry."""

    def __init__(self, token: str, **kwargs):
        self.token = token
        super().__init__(**kwargs)


def perform(
    conn: PartnerConnection,
    spec: CallSpec,
    method: str,
    path: str,
    *,
    body: dict | None = None,
    params: dict | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
    context: AuditContext | None = None,
    outcome_of=None,
    signed_headers=None,
) -> Exchange:
    """Make the call; returns the 2xx `Exchange` or raises a `PartnerError` subclass.

    `outcome_of(exchange) -> Outcome` refines a 2xx outcome for the audit event (an open that
    the partner answered "denied"). `signed_headers(body_bytes) -> dict` adds headers computed
    over the exact bytes sent (a Standard Webhooks signature). Records exactly one audit event
    either way.
    """
    context = context or AuditContext()
    request_id = request_id or uuid.uuid4().hex
    headers = {
        "X-Request-ID": request_id,
        "Idempotency-Key": idempotency_key or request_id,
        "Accept": "application/json",
    }
    payload = None
    if body is not None:
        # Canonical JSON: a redelivery sends byte-identical bodies, as idempotency keys require.
        payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        headers["Content-Type"] = "application/json"
    if signed_headers is not None:
        headers.update(signed_headers(payload or b""))
    policy = conn.policy
    max_attempts = 1 + policy.retries if spec.idempotent else 1
    session = session_for(conn)
    started = time.monotonic()
    attempts = 0
    refreshed = False
    rate_limit_waited = 0.0
    stale_token: str | None = None

    def attempt() -> requests.Response:
        token = tokens.access_token(conn, lambda: _fetch_token(conn, session), stale=stale_token)
        response = _send(conn, spec, session, method, path, headers, token, payload, params, request_id)
        _raise_for_status(conn, spec, response, token, request_id)
        return response

    try:
        while True:
            attempts += 1
            try:
                response = guarded(conn, spec.operation, attempt)
            except _TokenRefused as refused:
                if refreshed:
                    raise PartnerAuthError(
                        "partner refused a freshly issued token", operation=spec.operation, partner=conn.slug,
                        reason="http_401", http_status=401, request_id=request_id,
                    ) from None
                # Not deleted from the cache: another process may already have stored a fresh
                # token there; `stale=` makes `access_token` skip only the refused one.
                refreshed, stale_token = True, refused.token
                continue
            except RateLimited as limited:
                if rate_limit_waited + limited.retry_after_s > policy.rate_limit_max_wait_s:
                    raise
                rate_limit_waited += limited.retry_after_s
                time.sleep(limited.retry_after_s)
                continue
            except (PartnerTimeout, PartnerConnectionError, PartnerServerError):
                if attempts >= max_attempts:
                    raise
                time.sleep(_backoff_s(policy, attempts))
                continue
            exchange = Exchange(
                status=response.status_code,
                body=_json(response),
                headers=dict(response.headers),
                request_id=request_id,
                attempts=attempts,
                latency_ms=(time.monotonic() - started) * 1000,
            )
            if spec.action is not None:
                outcome = outcome_of(exchange) if outcome_of else Outcome.SUCCESS
                _audit(conn, spec, context, outcome, "", request_id, exchange.latency_ms, exchange.status)
            return exchange
    except PartnerError as error:
        if isinstance(error, PartnerUnavailable) and not isinstance(error, RateLimited):
            # the partner's own 429 Retry-After stands; anything else waits as the breaker says
            error.retry_after_s = max(error.retry_after_s, math.ceil(failure_retry_after_s(conn)))
        error.request_id = error.request_id or request_id
        error.partner = error.partner or conn.slug
        error.operation = spec.operation
        error.attempts = attempts
        if spec.action is not None:
            latency = (time.monotonic() - started) * 1000
            _audit(conn, spec, context, _outcome(error), error.reason, request_id, latency, error.http_status)
        raise


def _backoff_s(policy, attempt: int) -> float:
    """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^(attempt-1))]."""
    return random.uniform(0, min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (attempt - 1)))


def _send(conn, spec, session, method, path, headers, token, payload, params, request_id) -> requests.Response:
    started = time.monotonic()
    outcome = "success"
    try:
        response = session.request(
            method,
            conn.url(path),
            data=payload,
            params=params,
            headers={**headers, "Authorization": f"Bearer {token}"},
            timeout=conn.policy.timeout(spec.operation),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        error = transport_error(exc, operation=spec.operation, partner=conn.slug, request_id=request_id)
        outcome = error.reason
        raise error from None
    else:
        outcome = _status_outcome(response.status_code)
        return response
    finally:
        metrics.request_seconds.labels(partner=conn.slug, operation=spec.operation).observe(
            time.monotonic() - started
        )
        metrics.requests_total.labels(partner=conn.slug, operation=spec.operation, outcome=outcome).inc()


def _status_outcome(status: int) -> str:
    if 200 <= status < 300:
        return "success"
    if status in (401, 429):
        return f"http_{status}"
    return f"http_{status // 100}xx"


def transport_error(exc: requests.RequestException, **kwargs) -> PartnerUnavailable:
    """The typed error for a failure below HTTP (no response)."""
    if isinstance(exc, requests.Timeout):
        return PartnerTimeout(f"partner timed out ({type(exc).__name__})", **kwargs)
    if _is_tls(exc):
        return PartnerTLSError("TLS handshake with the partner failed", **kwargs)
    return PartnerConnectionError(f"cannot reach the partner ({type(exc).__name__})", **kwargs)


def _is_tls(exc: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | requests.exceptions.SSLError):
            return True
        stack.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                stack.append(linked)
    return False


def _raise_for_status(conn, spec, response: requests.Response, token: str, request_id: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    common = {"operation": spec.operation, "partner": conn.slug, "http_status": status, "request_id": request_id}
    error_code = str((_json(response) or {}).get("error", ""))[:64]
    if status == 401:
        raise _TokenRefused(token, reason="http_401", **common)
    if status == 429:
        raise RateLimited("partner rate limit", retry_after_s=_retry_after(response), reason="http_429", **common)
    if status >= 500:
        raise PartnerServerError(f"partner answered {status}", reason=f"http_{status}", **common)
    raise PartnerRejected(f"partner refused the request ({status} {error_code})", error_code=error_code,
                          reason=f"http_{status}", **common)


def _retry_after(response: requests.Response) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0  # an HTTP date or garbage: wait the minimum


def _json(response: requests.Response) -> dict | None:
    if not response.content:
        return None
    try:
        value = response.json()
    except ValueError:
        return None
    return value if isinstance(value, dict) else {"items": value}


def _fetch_token(conn: PartnerConnection, session: requests.Session) -> tuple[str, float]:
    """Ask the partner's token endpoint; records `partner.token` and metrics. -> (token, expires_in)."""
    started = time.monotonic()
    outcome, reason, status = Outcome.SUCCESS, "", None
    metric_outcome = "success"
    try:
        try:
            response = tokens.request_token(session, conn)
        except requests.RequestException as exc:
            error = transport_error(exc, operation="token", partner=conn.slug)
            outcome, reason, metric_outcome = _outcome(error), error.reason, error.reason
            raise error from None
        status = response.status_code
        metric_outcome = _status_outcome(status)
        body = _json(response) or {}
        if status == 200 and body.get("access_token"):
            return str(body["access_token"]), float(body.get("expires_in") or 60)
        common = {"operation": "token", "partner": conn.slug, "http_status": status}
        if status >= 500 or status == 429:
            outcome, reason = Outcome.ERROR, f"http_{status}"
            raise PartnerServerError(f"token endpoint answered {status}", reason=reason, **common)
        outcome, reason = Outcome.FAILURE, f"http_{status}"
        raise PartnerAuthError(f"token endpoint refused our client ({status})", reason=reason,
                               error_code=str(body.get("error", ""))[:64], **common)
    finally:
        latency = time.monotonic() - started
        metrics.request_seconds.labels(partner=conn.slug, operation="token").observe(latency)
        metrics.requests_total.labels(partner=conn.slug, operation="token", outcome=metric_outcome).inc()
        record(
            action=Action.PARTNER_TOKEN, outcome=outcome, actor_kind=ActorKind.SYSTEM, partner_id=conn.partner_id,
            object_type="partner_client", reason=reason, request_id="", latency_ms=latency * 1000,
            http_status=status,
        )


def _outcome(error: PartnerError) -> Outcome:
    if isinstance(error, PartnerTimeout):
        return Outcome.TIMEOUT
    if isinstance(error, PartnerServerError):
        return Outcome.ERROR
    if isinstance(error, PartnerUnavailable):
        return Outcome.UNAVAILABLE
    return Outcome.FAILURE


def _audit(conn, spec, context: AuditContext, outcome, reason, request_id, latency_ms, http_status) -> None:
    origin = context.origin_request_id
    if origin is None:
        origin = current_origin_request_id()
    record(
        action=spec.action,
        outcome=outcome,
        actor_kind=context.actor_kind if context.actor_ref else ActorKind.SYSTEM,
        actor_ref=context.actor_ref,
        origin_request_id=origin,
        object_type=context.object_type,
        object_ref=context.object_ref,
        partner_id=conn.partner_id,
        company_id=context.company_id,
        building_id=context.building_id,
        device_ref=context.device_ref,
        reason=reason,
        request_id=request_id,
        latency_ms=latency_ms,
        http_status=http_status,
    )
