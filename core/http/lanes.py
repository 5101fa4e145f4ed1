"""The machine lane: server-to-server paths skip the middleware that only browsers need.

The partner API (`/partner/`) is called by servers that prove who they are with a client
certificate and a bound bearer token, never with a cookie. Sessions, CSRF, Django's login and
its OTP check, messages, X-Frame-Options, auditlog's per-request actor and axes' login lockout
serve the admin and the resident login pages; on the partner path they cost time on every call
(on the access-decision hot path, measurably: see bench/decisions.py) and do nothing.

`MachineLaneMiddleware` sits in MIDDLEWARE after the middleware every request needs (the proxy
hop, request id, metrics, access log, body limit, client certificate, security headers). A
request under one of settings.MACHINE_LANE_PREFIXES leaves the main stack there and continues
through settings.MACHINE_LANE_MIDDLEWARE to the view instead of through the browser middleware
below (the Content-Security-Policy of the browser pages included).
"""

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.utils.module_loading import import_string


class _LaneHandler(BaseHandler):
    """URL resolution and view calling (BaseHandler._get_response) behind the lane's own middleware."""

    def __init__(self, middleware: list[str]):
        self.middleware_paths = list(middleware)
        self.load_middleware()

    def load_middleware(self, is_async=False):
        """Django's own chain building (BaseHandler.load_middleware), sync only, from the lane's list."""
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed(self.middleware_paths):
            try:
                instance = import_string(path)(handler)
            except MiddlewareNotUsed:
                continue
            if hasattr(instance, "process_view"):
                self._view_middleware.insert(0, instance.process_view)
            if hasattr(instance, "process_template_response"):
                self._template_response_middleware.append(instance.process_template_response)
            if hasattr(instance, "process_exception"):
                self._exception_middleware.append(instance.process_exception)
            handler = convert_exception_to_response(instance)
        self._middleware_chain = handler


class MachineLaneMiddleware:
    """Sends requests under MACHINE_LANE_PREFIXES through MACHINE_LANE_MIDDLEWARE; others carry on."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.prefixes = tuple(settings.MACHINE_LANE_PREFIXES)
        self.lane = _LaneHandler(settings.MACHINE_LANE_MIDDLEWARE)

    def __call__(self, request):
        if request.path_info.startswith(self.prefixes):
            return self.lane._middleware_chain(request)
        return self.get_response(request)
