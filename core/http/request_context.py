"""Per-request context (request id, actor ref) readable from anywhere, e.g. log filters."""

import contextvars
import re
import uuid

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
actor_ref_var: contextvars.ContextVar[str] = contextvars.ContextVar("actor_ref", default="-")

ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def accept_or_generate_request_id(candidate: str | None) -> str:
    """Return the caller's X-Request-ID if it is a safe token, else a fresh one."""
    if candidate and ACCEPTABLE_REQUEST_ID.match(candidate):
        return candidate
    return uuid.uuid4().hex


def current_request_id() -> str:
    return request_id_var.get()
