"""Fault injection: what the sandbox partner does wrong on purpose, switched at run time.

Scope of each fault (all of them sit "in front of" the partner application, so a request
failed by a fault is neither processed nor written to the partner's call log):

- ``latency_ms`` — every TLS request (token endpoint included) waits this long first.
- ``hang`` — every TLS request is accepted and then never answered: the handler waits until
  the fault is cleared or `HANG_LIMIT_S` passes, then drops the connection unprocessed.
- ``down`` — the TLS listening socket is closed (connections are refused) and open
  connections are cut; the server owning the listener acts on it (see `server.py`).
- ``rate_limit`` + ``retry_after_s`` — every /v1 request gets 429 with ``Retry-After``.
- ``fail_next`` — the next N /v1 requests get ``error_status``.
- ``error_rate`` (0..1) — that share of /v1 requests gets ``error_status`` (500, 502 or 503).
- ``expire_tokens_early`` — every bearer token presented is treated as expired (401).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from dataclasses import dataclass

from .routing import Reply

ERROR_STATUSES = (500, 502, 503)
HANG_LIMIT_S = 120.0


@dataclass
class FaultSettings:
    latency_ms: int = 0
    error_rate: float = 0.0
    error_status: int = 503
    hang: bool = False
    down: bool = False
    expire_tokens_early: bool = False
    rate_limit: bool = False
    retry_after_s: int = 1
    fail_next: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_SWITCHES = frozenset({"hang", "down", "expire_tokens_early", "rate_limit"})
_COUNTS = frozenset({"latency_ms", "retry_after_s", "fail_next"})


def _validated(name: str, value):
    """`value` checked against the type and range of setting `name`; ValueError if it does not fit."""
    if name in _SWITCHES:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if name == "error_rate":
        if not (is_number and 0 <= value <= 1):
            raise ValueError("error_rate must be a number between 0 and 1")
        return float(value)
    if name == "error_status":
        if value not in ERROR_STATUSES or not is_number:
            raise ValueError(f"error_status must be one of {ERROR_STATUSES}")
        return int(value)
    if name in _COUNTS:
        if not (is_number and value >= 0 and value == int(value)):
            raise ValueError(f"{name} must be a non-negative integer")
        return int(value)
    raise ValueError(f"unknown fault {name!r}")


class Faults:
    """The current fault settings, shared by all request threads and the control API."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._settings = FaultSettings()

    def snapshot(self) -> FaultSettings:
        with self._changed:
            return dataclasses.replace(self._settings)

    def update(self, changes: dict) -> FaultSettings:
        """Apply any subset of the settings; all or nothing (ValueError names the bad one)."""
        validated = {name: _validated(name, value) for name, value in changes.items()}
        with self._changed:
            self._settings = dataclasses.replace(self._settings, **validated)
            self._changed.notify_all()
            return dataclasses.replace(self._settings)

    def clear(self) -> FaultSettings:
        with self._changed:
            self._settings = FaultSettings()
            self._changed.notify_all()
            return dataclasses.replace(self._settings)

    def delay(self) -> None:
        latency_ms = self.snapshot().latency_ms
        if latency_ms:
            time.sleep(latency_ms / 1000)

    def hold_if_hanging(self, limit_s: float = HANG_LIMIT_S) -> bool:
        """Block while ``hang`` is on (at most `limit_s`); True if the request was held."""
        deadline = time.monotonic() + limit_s
        with self._changed:
            if not self._settings.hang:
                return False
            while self._settings.hang and (remaining := deadline - time.monotonic()) > 0:
                self._changed.wait(remaining)
            return True

    def injected_failure(self) -> Reply | None:
        """The reply a faulty partner gives this /v1 request instead of processing it, if any."""
        with self._changed:
            settings = self._settings
            if settings.rate_limit:
                return Reply(
                    429,
                    {"error": "rate_limited"},
                    {"Retry-After": str(settings.retry_after_s)},
                )
            if settings.fail_next > 0:
                settings.fail_next -= 1
                return _error(settings.error_status)
            if settings.error_rate and random.random() < settings.error_rate:
                return _error(settings.error_status)
        return None


def _error(status: int) -> Reply:
    return Reply(status, {"error": "injected_fault", "error_description": f"injected {status}"})
