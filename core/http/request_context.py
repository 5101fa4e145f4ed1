"""Per-request context (request id, actor ref) readable from anywhere, e.g. log filters."""

import contextlib
import contextvars
import re
import uuid

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
actor_ref_var: contextvars.ContextVar[str] = contextvars.ContextVar("actor_ref", default="-")
# the request that caused the work being done, when it is not the one being served (a delivery)
origin_request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("origin_request_id", default=None)

ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def accept_or_generate_request_id(candidate: str | None) -> str:
    """Return the caller's X-Request-ID if it is a safe token, else a fresh one."""
    if candidate and ACCEPTABLE_REQUEST_ID.match(candidate):
        return candidate
    return uuid.uuid4().hex


def current_request_id() -> str:
    return request_id_var.get()


@contextlib.contextmanager
def caused_by(request_id: str):
    """Within the block, work done on behalf of an earlier request (an outbox message delivered
    by a worker) names that request as its origin (`current_origin_request_id`)."""
    token = origin_request_id_var.set(request_id)
    try:
        yield
    finally:
        origin_request_id_var.reset(token)


def current_origin_request_id() -> str:
    """The request that caused the work being done: the enclosing `caused_by` block's, else the
    request being served ("" for neither)."""
    origin = origin_request_id_var.get()
    if origin is None:
        origin = request_id_var.get()
    return "" if origin == "-" else origin
