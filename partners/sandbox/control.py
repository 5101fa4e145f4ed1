"""A client for the sandbox's control API (plain HTTP on loopback), for tests and scripts.

    control = SandboxControl("http://127.0.0.1:8444")
    control.put_device("gate-1", online=True)
    control.set_faults(latency_ms=200, error_rate=0.5, error_status=502)
    control.down(); control.up(); control.reset()
    control.configure_smarthome("https://127.0.0.1:8000", webhook_secret="whsec_...")
    control.arrival("gate-1", "plate", plate_token)
    control.install_key_material(exported_jwe); control.arrival("gate-1", "plate", plate="A123BC77")

Standard library only; proxies from the environment are ignored (the sandbox is local).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import quote


class SandboxControlError(Exception):
    def __init__(self, status: int, body: str):
        super().__init__(f"sandbox control API answered {status}: {body}")
        self.status = status
        self.body = body


class SandboxControl:
    def __init__(self, base_url: str, timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def faults(self) -> dict:
        return self._call("GET", "/_control/faults")

    def set_faults(self, **faults) -> dict:
        """Set any subset of the faults (latency_ms, error_rate, error_status, hang, down,
        expire_tokens_early, rate_limit, retry_after_s, fail_next); returns all settings."""
        return self._call("PUT", "/_control/faults", faults)

    def clear_faults(self) -> dict:
        return self._call("DELETE", "/_control/faults")

    def down(self) -> dict:
        """Close the partner's listening socket: new connections are refused, open ones cut."""
        return self.set_faults(down=True)

    def up(self) -> dict:
        return self.set_faults(down=False)

    def reset(self) -> None:
        """Clear state, call log, idempotency store and faults."""
        self._call("POST", "/_control/reset")

    def state(self) -> dict:
        return self._call("GET", "/_control/state")

    def log(self) -> dict:
        """``{"entries": [...], "idempotency_keys": [...]}`` for all clients."""
        return self._call("GET", "/_control/log")

    def put_device(self, ref: str, online: bool = True, lockdown: bool = False) -> dict:
        path = f"/_control/devices/{quote(ref, safe='')}"
        return self._call("PUT", path, {"online": online, "lockdown": lockdown})

    def configure_smarthome(self, base_url: str, **settings) -> dict:
        """Point the partner at our service: base_url and optionally token_url, client_id,
        client_secret, webhook_secret, outbound_webhook_secret (what our events must be signed
        with), decision_timeout_s (see `smarthome_link`)."""
        return self._call("PUT", "/_control/smarthome", {"base_url": base_url, **settings})

    def smarthome(self) -> dict:
        """The link settings, secrets replaced by has_client_secret / has_webhook_secret."""
        return self._call("GET", "/_control/smarthome")

    def arrival(
        self, device_ref: str, credential_type: str, token: str | None = None, request_id: str | None = None,
        *, plate: str | None = None,
    ) -> dict:
        """A car (plate) or person (face) at `device_ref`: the partner asks our service, or
        decides from its local allowlist if we cannot answer. Returns the decision. With `plate`
        instead of a token, the partner's camera tokenises it under the key it uses
        (``plate_key_version`` in the answer)."""
        credential = {"type": credential_type, "plate": plate} if plate is not None else {
            "type": credential_type, "token": token}
        body = {"device_ref": device_ref, "credential": credential}
        if request_id:
            body["request_id"] = request_id
        return self._call("POST", "/_control/arrivals", body)

    def install_key_material(self, jwe: str) -> dict:
        """Hand the partner our exported key material (a compact JWE); it switches to it and
        answers ``{credentials_version, fingerprints, previous_plate_key}``."""
        return self._call("POST", "/_control/key-material", {"jwe": jwe})

    def emit_event(self, event_type: str, data: dict, **overrides) -> dict:
        """Send us a Standard Webhooks event; overrides: webhook_id, timestamp (Unix seconds)."""
        return self._call("POST", "/_control/emit-event", {"type": event_type, "data": data, **overrides})

    def _call(self, method: str, path: str, payload: dict | None = None) -> dict:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise SandboxControlError(error.code, error.read().decode(errors="replace")) from None
