"""The partner's calls to OUR service: access decisions when a car arrives, and event webhooks.

Our side of the contract (DESIGN.md): ``POST /partner/v1/access-decisions``
``{device_ref, credential: {type, token}, request_id, observed_at}`` ->
``{decision: allow|deny, reason, decision_id, ttl_s}``, and ``POST /partner/v1/events`` signed
per Standard Webhooks. The sandbox calls them over mTLS with ``partner-client.pem``, trusting
only ``ca.pem``, with a bearer token from our OAuth2 token endpoint (client credentials) when
one is configured.

Our address is usually known only after the sandbox started, so the link is configured at run
time (control API ``PUT /_control/smarthome``): ``base_url``, and optionally ``token_url``,
``client_id``, ``client_secret``, ``webhook_secret`` (``whsec_...``, signs the events it sends
us), ``outbound_webhook_secret`` (``whsec_...`` or a list of them during a rotation: what OUR
events to ``POST /v1/events`` must be signed with) and ``decision_timeout_s``.

A 401 from our service drops the cached token: a new one is fetched and the call retried once.
When our service cannot answer a decision (unreachable, timeout, non-2xx, malformed answer)
the partner decides from its local allowlist, as a real barrier would.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
import uuid
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

import requests
from standardwebhooks import Webhook

from .routing import ApiError
from .store import Arrival, PartnerState, SentEvent, rfc3339, utc_now

DECISIONS_PATH = "/partner/v1/access-decisions"
EVENTS_PATH = "/partner/v1/events"
CONNECT_TIMEOUT_S = 1.0
EVENT_TIMEOUT_S = 5.0
TOKEN_REFRESH_MARGIN_S = 30
_SETTINGS = (
    "base_url", "token_url", "client_id", "client_secret", "webhook_secret", "outbound_webhook_secret",
    "decision_timeout_s",
)
_SECRETS = ("client_secret", "webhook_secret", "outbound_webhook_secret")


@dataclass
class _CachedToken:
    value: str
    refresh_at: float


class SmarthomeLink:
    def __init__(self, state: PartnerState, client_cert: tuple[Path, Path], ca_file: Path):
        self.state = state
        self._client_cert = (str(client_cert[0]), str(client_cert[1]))
        self._ca_file = str(ca_file)
        self._lock = threading.Lock()
        self._settings: dict = {}
        self._token: _CachedToken | None = None

    def configure(self, settings: dict) -> dict:
        """Replace the link settings; returns them without secrets. ApiError 400 if malformed."""
        unknown = set(settings) - set(_SETTINGS)
        if unknown:
            raise ApiError(400, "invalid_request", f"unknown settings: {', '.join(sorted(unknown))}")
        if not isinstance(settings.get("base_url"), str) or not settings["base_url"].startswith("https://"):
            raise ApiError(400, "invalid_request", "base_url must be an https URL")
        timeout = settings.get("decision_timeout_s", 2.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ApiError(400, "invalid_request", "decision_timeout_s must be a positive number")
        event_secrets = _event_secrets(settings.get("outbound_webhook_secret"))
        with self._lock:
            self._settings = {**settings, "base_url": settings["base_url"].rstrip("/")}
            self._token = None
        with self.state.lock:
            self.state.event_secrets = event_secrets
        return self.describe()

    def describe(self) -> dict:
        with self._lock:
            public = {k: v for k, v in self._settings.items() if k not in _SECRETS}
            return {**public, **{f"has_{k}": k in self._settings for k in _SECRETS}}

    def rotate_secrets(self, *, webhook_secret: str, outbound_webhook_secret: str) -> None:
        """New key material (keyring.py): the events it sends us are signed with `webhook_secret`
        from now on (once linked), and ours verify under the new outbound secret or the one before."""
        with self._lock:
            if self._settings:
                self._settings["webhook_secret"] = webhook_secret
        with self.state.lock:
            previous = [secret for secret in self.state.event_secrets if secret != outbound_webhook_secret]
            self.state.event_secrets = [outbound_webhook_secret, *previous[:1]]

    def clear(self) -> None:
        with self._lock:
            self._settings = {}
            self._token = None
        with self.state.lock:
            self.state.event_secrets = []

    def decide_arrival(self, arrival: dict) -> dict:
        """Ask our service whether ``arrival`` may pass; fall back to the local allowlist.

        `arrival`: ``{device_ref, credential: {type, token}, request_id?}``. Returns
        ``{decision, reason, source: "smarthome"|"local_allowlist", ...}`` and records it.
        """
        device_ref, credential = arrival.get("device_ref"), arrival.get("credential")
        if not isinstance(device_ref, str) or not isinstance(credential, dict):
            raise ApiError(400, "invalid_request", "device_ref and credential {type, token} are required")
        request_id = arrival.get("request_id") or str(uuid.uuid4())
        body = {
            "device_ref": device_ref,
            "credential": {"type": credential.get("type"), "token": credential.get("token")},
            "request_id": request_id,
            "observed_at": rfc3339(utc_now()),
        }
        settings = self._current_settings()
        try:
            response = self._send(
                settings, DECISIONS_PATH, json.dumps(body), {}, timeout=settings["decision_timeout_s"]
            )
            response.raise_for_status()
            outcome = _decision_from(response.json())
        except (requests.RequestException, ValueError) as error:
            outcome = self._local_decision(device_ref, body["credential"])
            outcome["fallback_reason"] = _failure_reason(error)
        outcome["request_id"] = request_id
        with self.state.lock:
            self.state.arrivals.append(
                Arrival(
                    request_id=request_id,
                    device_ref=device_ref,
                    credential_type=str(body["credential"]["type"]),
                    decision=outcome["decision"],
                    source=outcome["source"],
                    at=body["observed_at"],
                )
            )
        return outcome

    def emit_event(self, message: dict) -> dict:
        """Send ``{type, data}`` to our events endpoint, signed per Standard Webhooks.

        Optional ``webhook_id`` and ``timestamp`` (Unix seconds) override the generated ones,
        to replay a message or send a stale one. Returns ``{webhook_id, http_status}``.
        """
        event_type, data = message.get("type"), message.get("data", {})
        if not isinstance(event_type, str) or not event_type:
            raise ApiError(400, "invalid_request", "type is required")
        settings = self._current_settings()
        if not settings.get("webhook_secret"):
            raise ApiError(409, "not_configured", "no webhook_secret in PUT /_control/smarthome")
        webhook_id = message.get("webhook_id") or f"msg_{uuid.uuid4().hex}"
        timestamp = message.get("timestamp", int(time.time()))
        if isinstance(timestamp, bool) or not isinstance(timestamp, int):
            raise ApiError(400, "invalid_request", "timestamp must be Unix seconds")
        sent_at = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
        payload = json.dumps({"type": event_type, "timestamp": rfc3339(sent_at), "data": data})
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(settings["webhook_secret"]).sign(webhook_id, sent_at, payload),
        }
        try:
            response = self._send(settings, EVENTS_PATH, payload, headers, timeout=EVENT_TIMEOUT_S)
        except requests.RequestException as error:
            raise ApiError(502, "smarthome_unreachable", _failure_reason(error)) from None
        with self.state.lock:
            self.state.events_sent.append(
                SentEvent(webhook_id, event_type, response.status_code, rfc3339(utc_now()))
            )
        return {"webhook_id": webhook_id, "http_status": response.status_code}

    def _current_settings(self) -> dict:
        with self._lock:
            if not self._settings:
                raise ApiError(409, "not_configured", "configure our service first: PUT /_control/smarthome")
            return {"decision_timeout_s": 2.0, **self._settings}

    def _send(
        self, settings: dict, path: str, payload: str, headers: dict, *, timeout: float
    ) -> requests.Response:
        """POST to our service with the cached token; on a 401 the token is dropped, a new one
        fetched and the call sent once more (our service revokes tokens - a partner suspended and
        reinstated must not keep presenting a dead one and fall back to its allowlist for ever)."""
        with self._session() as session:
            token = self._bearer_token(session, settings)
            response = self._post(session, settings, path, payload, headers, token, timeout)
            if response.status_code == 401 and token:
                self._forget_token(token)
                response.close()
                fresh = self._bearer_token(session, settings)
                response = self._post(session, settings, path, payload, headers, fresh, timeout)
            return response

    @staticmethod
    def _post(
        session: requests.Session, settings: dict, path: str, payload: str, headers: dict, token: str | None,
        timeout: float,
    ) -> requests.Response:
        if token:
            headers = {**headers, "Authorization": f"Bearer {token}"}
        return session.post(
            settings["base_url"] + path,
            data=payload.encode(),
            headers={**headers, "Content-Type": "application/json"},
            timeout=(CONNECT_TIMEOUT_S, timeout),
        )

    def _forget_token(self, token: str) -> None:
        with self._lock:
            if self._token is not None and self._token.value == token:  # not a newer one another call got
                self._token = None

    def _bearer_token(self, session: requests.Session, settings: dict) -> str | None:
        if not settings.get("token_url"):
            return None
        with self._lock:
            if self._token and self._token.refresh_at > time.monotonic():
                return self._token.value
        response = session.post(
            settings["token_url"],
            data={"grant_type": "client_credentials"},
            auth=(settings.get("client_id", ""), settings.get("client_secret", "")),
            timeout=(CONNECT_TIMEOUT_S, EVENT_TIMEOUT_S),
        )
        response.raise_for_status()
        answer = response.json()
        lifetime = int(answer.get("expires_in", 60))
        with self._lock:
            self._token = _CachedToken(
                answer["access_token"], time.monotonic() + max(lifetime - TOKEN_REFRESH_MARGIN_S, 0)
            )
            return self._token.value

    def _session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.cert = self._client_cert
        session.verify = self._ca_file
        return session

    def _local_decision(self, device_ref: str, credential: dict) -> dict:
        """The partner's own answer from its allowlists: allow if an entry for this credential
        covers the device and is valid now."""
        key, now = (credential.get("type"), credential.get("token")), utc_now()
        with self.state.lock:
            for allowlist in self.state.allowlists.values():
                entry = allowlist.entries.get(key)
                if entry and device_ref in entry["device_refs"] and allowlist_entry_allows(entry, now):
                    return {
                        "decision": "allow",
                        "reason": "local_allowlist_match",
                        "source": "local_allowlist",
                    }
        return {"decision": "deny", "reason": "not_in_local_allowlist", "source": "local_allowlist"}


def _event_secrets(value) -> list[str]:
    secrets = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(secrets, list) or not all(isinstance(s, str) and s.startswith("whsec_") for s in secrets):
        raise ApiError(400, "invalid_request", "outbound_webhook_secret must be whsec_... or a list of them")
    return list(secrets)


def _decision_from(answer) -> dict:
    if not isinstance(answer, dict) or answer.get("decision") not in ("allow", "deny"):
        raise ValueError("malformed decision")
    keep = ("decision", "reason", "decision_id", "ttl_s")
    return {**{k: answer[k] for k in keep if k in answer}, "source": "smarthome"}


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def allowlist_entry_allows(entry: dict, now: datetime.datetime) -> bool:
    """Within the entry's validity and, if it has a `schedule`, inside one of its weekly windows
    (local times of its `timezone`; a schedule without windows on a day lets nobody in that day)."""
    starts = entry.get("valid_from")
    ends = entry.get("valid_until")
    if starts and now < datetime.datetime.fromisoformat(starts):
        return False
    if ends and now >= datetime.datetime.fromisoformat(ends):
        return False
    if "schedule" not in entry:
        return True
    local = now.astimezone(zoneinfo.ZoneInfo(entry.get("timezone") or "UTC"))
    hhmm = local.strftime("%H:%M")
    return any(start <= hhmm < end for start, end in entry["schedule"].get(_DAYS[local.weekday()], []))


def _failure_reason(error: Exception) -> str:
    if isinstance(error, requests.Timeout):
        return "timeout"
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"http_{error.response.status_code}"
    if isinstance(error, requests.ConnectionError):
        return "unreachable"
    return "bad_answer"
