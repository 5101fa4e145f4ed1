"""The access app's resident API helpers: the documented problem responses and paginated schemas.

The base every resident API view shares - scopes per method (denied by default), the per-user
rate limit, the resident behind the token and the refusal of suspended residents - is the
kernel's (core/api/resident.py), so that the consent app's endpoints stand behind the same one.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from core.api.resident import ResidentApi, rate_limit

__all__ = ["ProblemSerializer", "ResidentApi", "paginated", "problems", "rate_limit"]

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
