"""Cross-cutting request middleware: request id, one access-log line per request, body limit,
503 while the shared cache is down, auditlog's context with the trusted client address."""

import logging
import time

from auditlog.middleware import AuditlogMiddleware as _AuditlogMiddleware
from django.conf import settings
from django.http import HttpResponse
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from core.cache.shared import (
    OUTAGE_ERRORS,
    OUTAGE_RETRY_AFTER_S,
    SharedCacheUnavailable,
    shared_cache_unavailable,
)
from core.cache.versioned import request_snapshot
from core.http.client_ip import client_ip
from core.http.problems import API_PREFIXES, problem_response
from core.http.request_context import accept_or_generate_request_id, actor_ref_var, request_id_var
from core.security.identifiers import user_ref

access_logger = logging.getLogger("smarthome.request")


class RequestIdMiddleware:
    """Takes X-Request-ID from the caller (if it is a safe token) or makes one; echoes it back.
    Also scopes one read of the data versions (core.cache.versioned) to the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = accept_or_generate_request_id(request.headers.get("X-Request-ID"))
        request.request_id = request_id
        token = request_id_var.set(request_id)
        actor_token = actor_ref_var.set("-")
        try:
            with request_snapshot():
                response = self.get_response(request)
        finally:
            request_id_var.reset(token)
            actor_ref_var.reset(actor_token)
        response["X-Request-ID"] = request_id
        return response


class AccessLogMiddleware:
    """Writes one structured line per request: id, method, route pattern, status, duration, actor.

    The route is the URL pattern (`api/v1/devices/<int:pk>/open`), never the concrete path, so
    identifiers in URLs do not reach the logs.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        actor = getattr(request, "actor_ref", None) or user_ref(getattr(request, "user", None))
        actor_ref_var.set(actor)
        access_logger.info(
            "request",
            extra={
                "method": request.method,
                "route": match.route if match else "<unresolved>",
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "actor": actor,
            },
        )
        return response


class BodySizeLimitMiddleware:
    """Rejects bodies larger than REQUEST_BODY_MAX_BYTES with 413 before any view reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.REQUEST_BODY_MAX_BYTES
        for prefix, prefix_limit in settings.REQUEST_BODY_MAX_BYTES_BY_PREFIX.items():
            if request.path.startswith(prefix):
                limit = prefix_limit
        try:
            length = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            return problem_response(400, gettext("Content-Length is not a number."), request=request)
        if length > limit:
            return problem_response(
                413, gettext("The request body is %(length)s bytes; the limit is %(limit)s bytes.")
                % {"length": length, "limit": limit}, request=request
            )
        return self.get_response(request)


def outage_path(request) -> str:
    """The kind of request, as the outage metric labels it (a few fixed values, never a URL)."""
    path = request.path
    if path.startswith("/partner/"):
        return "partner"
    if path.startswith("/o/"):
        return "token"
    if path.startswith("/accounts/login/"):
        return "login"
    if path.startswith("/api/"):
        return "resident_read" if request.method in ("GET", "HEAD", "OPTIONS") else "resident_write"
    if path.startswith(("/admin/", "/account/")):
        return "admin"
    return "other"


class SharedCacheOutageMiddleware:
    """A view that needed the shared cache (Redis) while it is down: 503 + Retry-After, never a 500.

    Paths that can go on without it (partner decisions, resident reads, the token endpoint) catch
    the outage themselves and never get here; what does is refused before it changed anything
    (`SharedCacheUnavailable` from a rate limit) or failed at a cache call (redis-py's connection
    and timeout errors), counted in `smarthome_shared_cache_unavailable_total{path}` either way.
    API paths get a problem document (`/problems/shared-cache-unavailable`), others a short page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, SharedCacheUnavailable):
            retry_after = exception.retry_after_s
        elif isinstance(exception, OUTAGE_ERRORS):
            shared_cache_unavailable(outage_path(request), exception)
            retry_after = OUTAGE_RETRY_AFTER_S
        else:
            return None
        if request.path.startswith(API_PREFIXES):
            return problem_response(
                503, gettext("A backing service is briefly unavailable; try again later."), request=request,
                code="shared-cache-unavailable", headers={"Retry-After": str(retry_after)},
                retry_after_s=retry_after,
            )
        response = HttpResponse(
            _("The service is briefly unavailable; please try again in a few seconds."),
            status=503, content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = str(retry_after)
        return response


class AuditlogMiddleware(_AuditlogMiddleware):
    """django-auditlog's middleware with the client address taken the way the rest of the service
    takes it (core.http.client_ip): auditlog's own reads the first X-Forwarded-For hop, which any
    client can write, so an admin could otherwise put a made-up address into the change history."""

    @staticmethod
    def _get_remote_addr(request):
        return None if settings.AUDITLOG_DISABLE_REMOTE_ADDR else (client_ip(request) or None)
