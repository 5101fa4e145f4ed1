"""Requests, replies and routing shared by the partner API and the control API.

Transport-free: the HTTP servers in `server.py` turn bytes into a `Request`, an app turns a
`Request` into a `Reply`, and these types carry nothing TLS- or socket-specific except the
DER of the client certificate the connection presented.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any
from urllib.parse import unquote


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""
    client_cert_der: bytes | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @cached_property
    def json(self) -> dict[str, Any]:
        """The body as a JSON object; raises `ApiError` 400 ``invalid_request`` otherwise."""
        try:
            value = json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_request", "body is not valid JSON") from None
        if not isinstance(value, dict):
            raise ApiError(400, "invalid_request", "body must be a JSON object")
        return value

    def json_str(self, name: str) -> str | None:
        """A string field of the JSON body, or None when absent, not a string or the body is not JSON."""
        try:
            value = self.json.get(name)
        except ApiError:
            return None
        return value if isinstance(value, str) else None


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # The outcome word the partner writes to its call log; never sent to the client.
    result: str | None = None

    def with_header(self, name: str, value: str) -> Reply:
        return replace(self, headers={**self.headers, name: value})


class ApiError(Exception):
    """An error reply: JSON ``{"error": code, "error_description": detail}`` with `status`."""

    def __init__(self, status: int, code: str, detail: str | None = None, headers: dict | None = None):
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}

    def reply(self) -> Reply:
        body = {"error": self.code}
        if self.detail:
            body["error_description"] = self.detail
        return Reply(self.status, body, dict(self.headers), result=self.code)


@dataclass(frozen=True)
class Route:
    """`pattern` is a path with ``{name}`` placeholders, each matching one non-empty segment
    (percent-decoded in the parameters).

    `operation` names the call in the partner's call log; None means the call is not logged.
    `idempotency_store`: False for operations that de-duplicate by their own id (events, by
    ``webhook-id``), so the ``Idempotency-Key`` store never answers for them.
    """

    method: str
    pattern: str
    handler: Callable[..., Reply]
    operation: str | None = None
    idempotency_store: bool = True

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern) + "$")


class Router:
    def __init__(self, routes: list[Route]):
        self.routes = routes

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for `method` and `path` and its path parameters; ApiError 404 or 405 if none."""
        allowed = []
        for route in self.routes:
            found = route.regex.match(path)
            if not found:
                continue
            if route.method == method:
                return route, {name: unquote(value) for name, value in found.groupdict().items()}
            allowed.append(route.method)
        if allowed:
            raise ApiError(405, "method_not_allowed", headers={"Allow": ", ".join(allowed)})
        raise ApiError(404, "not_found")
