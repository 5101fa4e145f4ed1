"""What every resident API view shares, whichever app it lives in: OAuth2 scopes per method
(denied by default), the per-user rate limit, the resident behind the token and the refusal of
a suspended resident, and domain ValidationError -> 400.

Scopes: `required_scopes = {"GET": ("devices:read", "vehicles:write"), ...}` - a method needs ONE
of its scopes (403 `/problems/missing-scope` names the first). HEAD takes GET's scopes. A method
the view implements but does not list is refused (403 `/problems/missing-scope`, OPTIONS
included); a method it does not implement is 405 with Allow. No token: 401.
Suspended residents: 403 `/problems/resident-suspended` on every endpoint (a view that records
the refusal among its own rules sets `checks_suspension_itself`).
Rate limit: API_RATE_PER_MIN (default 120) requests per user per minute -> 429 + Retry-After.
Domain ValidationErrors are 400 naming the field, except those whose code the view lists in
`conflict_codes` (the request is well-formed but conflicts with what exists, e.g. a plate another
car already has): 409 `/problems/<code>`, with the same `errors`.

The kernel knows no resident model: settings.RESIDENT_RESOLVER names the function
`user -> resident or None` (the resident must have a boolean `suspended`).
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy
from rest_framework import exceptions, serializers
from rest_framework.permissions import SAFE_METHODS
from rest_framework.views import APIView

from core.api.permissions import MissingScope
from core.http.client_ip import client_ip
from core.ratelimit import Limit, hit

RESIDENT_SUSPENDED_DETAIL = "Your account is suspended; contact your management company."


class RateLimited(exceptions.Throttled):
    problem_code = "rate-limited"


class UndeclaredScope(exceptions.PermissionDenied):
    """A method with no declared scope: no token may use it."""

    problem_code = "missing-scope"
    default_detail = gettext_lazy("No OAuth2 scope allows this operation.")


class Conflict(exceptions.APIException):
    """409: a well-formed request that conflicts with the current state (`problem_code` from its code)."""

    status_code = 409

    def __init__(self, code: str, errors: list[dict]):
        super().__init__(errors[0]["detail"])
        self.problem_code = code.replace("_", "-")
        self.problem_errors = errors


class ResidentSuspended(exceptions.PermissionDenied):
    problem_code = "resident-suspended"
    default_detail = RESIDENT_SUSPENDED_DETAIL
    problem_extra = {"reason": "resident-suspended"}


def rate_limit(key: str, per_minute: int, *, read: bool = False) -> None:
    """Count one hit on `key`; raise 429 with Retry-After when over `per_minute`.

    Shared cache (Redis) down: a `read` goes on uncounted, a write is refused with 503 and
    Retry-After (docs/operations.md, "When Redis is down")."""
    path = "resident_read" if read else "resident_write"
    wait = hit(key, Limit(count=per_minute, window_s=60), path=path, fail_open=read)
    if wait is not None:
        raise RateLimited(wait=wait)


@functools.cache
def _resident_resolver(path: str):
    return import_string(path)


def resident_of(user):
    """The resident profile of an authenticated app user, or None (staff, partners, unknown)."""
    return _resident_resolver(settings.RESIDENT_RESOLVER)(user)


class ResidentApi(APIView):
    required_scopes: dict[str, tuple[str, ...]] = {}
    # A suspended resident is refused everywhere (403 /problems/resident-suspended); the device
    # operations check it among their object rules instead, so the refusal is audited there.
    checks_suspension_itself = False
    conflict_codes: frozenset[str] = frozenset()

    def check_permissions(self, request):
        super().check_permissions(request)
        token = request.auth
        if token is None or not hasattr(token, "allow_scopes"):
            raise exceptions.NotAuthenticated()
        method = "GET" if request.method == "HEAD" else request.method
        if method.lower() not in self.http_method_names or not hasattr(self, method.lower()):
            raise exceptions.MethodNotAllowed(request.method)
        scopes = self.required_scopes.get(method, ())
        if not scopes:
            raise UndeclaredScope()
        if not any(token.allow_scopes([scope]) for scope in scopes):
            raise MissingScope(scopes[0])
        rate_limit(f"api:user:{request.user.pk}", int(settings.API_RATE_PER_MIN), read=method in SAFE_METHODS)
        if not self.checks_suspension_itself and self.resident is not None and self.resident.suspended:
            raise ResidentSuspended()

    @property
    def resident(self):
        if not hasattr(self, "_resident"):
            self._resident = resident_of(self.request.user)
        return self._resident

    def source_ip(self) -> str | None:
        return client_ip(self.request) or None

    def handle_exception(self, exc):
        if isinstance(exc, DjangoValidationError):
            detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
            codes = _codes(exc)
            conflicts = sorted(set(codes.values()) & self.conflict_codes)
            if conflicts:
                exc = Conflict(conflicts[0], [
                    {"field": "" if field == "non_field_errors" else field, "code": codes[field], "detail": message}
                    for field, messages in detail.items() for message in messages])
            else:
                exc = exceptions.ValidationError(
                    {field: [serializers.ErrorDetail(m, code=codes.get(field, "invalid")) for m in messages]
                     for field, messages in detail.items()}
                )
        return super().handle_exception(exc)


def _codes(exc: DjangoValidationError) -> dict[str, str]:
    if not hasattr(exc, "error_dict"):
        return {"non_field_errors": next((e.code for e in exc.error_list if e.code), "invalid")}
    return {field: next((e.code for e in errors if e.code), "invalid") for field, errors in exc.error_dict.items()}
