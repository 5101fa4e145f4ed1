"""The sandbox's control API: plain HTTP on loopback, no auth - for tests and local runs only.

=========================================  ==================================================
``GET /_control/faults``                   current fault settings
``PUT /_control/faults``                   set any subset (see `faults.py`); 400 on a bad value
``DELETE /_control/faults``                clear all faults (and bring the listener back up)
``PUT /_control/devices/{device_ref}``     ``{online: bool, lockdown?: bool}`` register/update
``GET /_control/state``                    devices, faces, deletions, allowlists, video
                                           sessions, arrivals, events sent and received,
                                           tokens issued
``GET /_control/log``                      ``{entries, idempotency_keys}``: the call log of all
                                           clients (each entry with ``client_id``)
``POST /_control/reset``                   clear state, call log, idempotency store, faults,
                                           the link to our service and installed key material
``GET|PUT /_control/smarthome``            the link to our service (see `smarthome_link.py`)
``POST /_control/arrivals``                ``{device_ref, credential: {type, token} or
                                           {type: "plate", plate}, request_id?}``: ask our
                                           service (or the local allowlist) -> ``{decision,
                                           reason, source, ...}``; a plate is tokenised under
                                           the plate-token key in use (``plate_key_version``)
``POST /_control/key-material``            ``{jwe}``: our exported key material, opened with
                                           the partner's JWE key and switched to (see
                                           `keyring.py`) -> ``{credentials_version,
                                           fingerprints, previous_plate_key}``
``POST /_control/emit-event``              ``{type, data, webhook_id?, timestamp?}``: send us
                                           a Standard Webhooks event -> ``{webhook_id,
                                           http_status}``
=========================================  ==================================================
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from .app import PartnerApp
from .keyring import PartnerKeyring
from .routing import ApiError, Reply, Request, Route, Router
from .smarthome_link import SmarthomeLink
from .store import Device


class Listener(Protocol):
    def set_down(self, down: bool) -> None: ...


class ControlApp:
    def __init__(self, partner: PartnerApp, listener: Listener, link: SmarthomeLink, keyring: PartnerKeyring):
        self.partner = partner
        self.listener = listener
        self.link = link
        self.keyring = keyring
        self.router = Router(
            [
                Route("GET", "/_control/faults", self.get_faults),
                Route("PUT", "/_control/faults", self.put_faults),
                Route("DELETE", "/_control/faults", self.clear_faults),
                Route("PUT", "/_control/devices/{device_ref}", self.put_device),
                Route("GET", "/_control/state", self.get_state),
                Route("GET", "/_control/log", self.get_log),
                Route("POST", "/_control/reset", self.reset),
                Route("GET", "/_control/smarthome", self.get_link),
                Route("PUT", "/_control/smarthome", self.put_link),
                Route("POST", "/_control/arrivals", self.arrival),
                Route("POST", "/_control/emit-event", self.emit_event),
                Route("POST", "/_control/key-material", self.install_key_material),
            ]
        )

    def handle(self, request: Request) -> Reply:
        try:
            route, params = self.router.match(request.method, request.path)
            return route.handler(request, **params)
        except ApiError as error:
            return error.reply()

    def get_faults(self, request: Request) -> Reply:
        return Reply(200, self.partner.faults.snapshot().as_dict())

    def put_faults(self, request: Request) -> Reply:
        try:
            settings = self.partner.faults.update(request.json)
        except ValueError as error:
            raise ApiError(400, "invalid_fault", str(error)) from None
        self.listener.set_down(settings.down)
        return Reply(200, settings.as_dict())

    def clear_faults(self, request: Request) -> Reply:
        settings = self.partner.faults.clear()
        self.listener.set_down(False)
        return Reply(200, settings.as_dict())

    def put_device(self, request: Request, device_ref: str) -> Reply:
        changes = {name: request.json[name] for name in ("online", "lockdown") if name in request.json}
        if not all(isinstance(value, bool) for value in changes.values()):
            raise ApiError(400, "invalid_request", "online and lockdown must be true or false")
        state = self.partner.state
        with state.lock:
            device = dataclasses.replace(state.devices.get(device_ref) or Device(device_ref), **changes)
            state.devices[device_ref] = device
        return Reply(200, dataclasses.asdict(device))

    def get_state(self, request: Request) -> Reply:
        return Reply(200, self.partner.state.snapshot())

    def get_log(self, request: Request) -> Reply:
        state = self.partner.state
        with state.lock:
            entries = [{**c.as_entry(), "client_id": c.client_id} for c in state.calls]
            keys = [
                {"client_id": client_id, "method": method, "path": path, "key": key}
                for client_id, method, path, key in state.idempotency
            ]
        return Reply(200, {"entries": entries, "idempotency_keys": keys})

    def reset(self, request: Request) -> Reply:
        self.partner.state.reset()
        self.partner.faults.clear()
        self.listener.set_down(False)
        self.link.clear()
        self.partner.clients.reset()
        return Reply(200, {"reset": True})

    def get_link(self, request: Request) -> Reply:
        return Reply(200, self.link.describe())

    def put_link(self, request: Request) -> Reply:
        return Reply(200, self.link.configure(request.json))

    def arrival(self, request: Request) -> Reply:
        arrival = request.json
        credential = arrival.get("credential") if isinstance(arrival, dict) else None
        if isinstance(credential, dict) and credential.get("type") == "plate" and "plate" in credential:
            version, token = self.keyring.plate_token(credential["plate"])
            arrival = {**arrival, "credential": {"type": "plate", "token": token}}
            return Reply(200, {**self.link.decide_arrival(arrival), "plate_key_version": version})
        return Reply(200, self.link.decide_arrival(arrival))

    def install_key_material(self, request: Request) -> Reply:
        body = request.json
        return Reply(200, self.keyring.install(body.get("jwe") if isinstance(body, dict) else None))

    def emit_event(self, request: Request) -> Reply:
        return Reply(200, self.link.emit_event(request.json))
