"""What every resident API view shares: OAuth2 scopes per method, the per-user rate limit, the
resident behind the token, domain ValidationError -> 400, and the documented problem responses.

Scopes: `required_scopes = {"GET": ("devices:read", "vehicles:write"), ...}` - a method needs ONE
of its scopes (403 `/problems/missing-scope` names the first). No token: 401.
Suspended residents: 403 `/problems/resident-suspended` on every endpoint.
Rate limit: API_RATE_PER_MIN (default 120) requests per user per minute -> 429 + Retry-After.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.views import APIView

from access.api.errors import as_problem, rule_denied
from access.selectors.residents import resident_of
from core.api.permissions import MissingScope
from core.http.client_ip import client_ip
from core.ratelimit import Limit, hit


class RateLimited(exceptions.Throttled):
    problem_code = "rate-limited"


def rate_limit(key: str, per_minute: int) -> None:
    """Count one hit on `key`; raise 429 with Retry-After when over `per_minute`."""
    wait = hit(key, Limit(count=per_minute, window_s=60))
    if wait is not None:
        raise RateLimited(wait=wait)


ProblemSerializer = inline_serializer(
    "Problem",
    fields={
        "type": serializers.CharField(help_text="e.g. /problems/missing-scope, /problems/outside-schedule"),
        "title": serializers.CharField(),
        "status": serializers.IntegerField(),
        "detail": serializers.CharField(),
        "instance": serializers.CharField(required=False),
        "request_id": serializers.CharField(required=False),
    },
)


def paginated(serializer_class, name: str):
    """The schema of a StandardPagination page of `serializer_class` items."""
    return inline_serializer(
        name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )


def problems(*statuses: int) -> dict:
    """drf-spectacular `responses` entries for problem documents."""
    texts = {
        400: "Invalid request (`errors` lists field, code, detail)",
        401: "No or invalid access token",
        403: "Missing scope (`/problems/missing-scope`, `required_scope`) or a rule failed (`reason`)",
        404: "Not found - or not yours",
        409: "Conflict",
        422: "Idempotency-Key reused for another device",
        429: "Rate limit; see Retry-After",
        503: "Partner platform unavailable; see Retry-After",
    }
    return {
        (status, "application/problem+json"): OpenApiResponse(ProblemSerializer, description=texts[status])
        for status in statuses
    }


class ResidentApi(APIView):
    required_scopes: dict[str, tuple[str, ...]] = {}
    # A suspended resident is refused everywhere (403 /problems/resident-suspended); the device
    # operations check it among their object rules instead, so the refusal is audited there.
    checks_suspension_itself = False

    def check_permissions(self, request):
        super().check_permissions(request)
        token = request.auth
        if token is None or not hasattr(token, "allow_scopes"):
            raise exceptions.NotAuthenticated()
        scopes = self.required_scopes.get(request.method, ())
        if scopes and not any(token.allow_scopes([scope]) for scope in scopes):
            raise MissingScope(scopes[0])
        rate_limit(f"api:user:{request.user.pk}", int(getattr(settings, "API_RATE_PER_MIN", 120)))
        if not self.checks_suspension_itself and self.resident is not None and self.resident.suspended:
            raise rule_denied("resident-suspended")

    @property
    def resident(self):
        if not hasattr(self, "_resident"):
            self._resident = resident_of(self.request.user)
        return self._resident

    def source_ip(self) -> str | None:
        return client_ip(self.request) or None

    def handle_exception(self, exc):
        exc = as_problem(exc)
        if isinstance(exc, DjangoValidationError):
            detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
            codes = _codes(exc)
            exc = exceptions.ValidationError(
                {field: [serializers.ErrorDetail(m, code=codes.get(field, "invalid")) for m in messages]
                 for field, messages in detail.items()}
            )
        return super().handle_exception(exc)


def _codes(exc: DjangoValidationError) -> dict[str, str]:
    if not hasattr(exc, "error_dict"):
        return {"non_field_errors": next((e.code for e in exc.error_list if e.code), "invalid")}
    return {field: next((e.code for e in errors if e.code), "invalid") for field, errors in exc.error_dict.items()}
