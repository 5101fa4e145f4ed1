"""OpenAPI declarations shared by the APIs (drf-spectacular): problem documents and pages."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

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

PROBLEM_DESCRIPTIONS = {
    400: "Invalid request (`errors` lists field, code, detail)",
    401: "No or invalid access token",
    403: "Missing scope (`/problems/missing-scope`, `required_scope`) or a rule failed (`reason`)",
    404: "Not found - or not yours",
    405: "Method not allowed (see Allow)",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Idempotency-Key reused for another device",
    429: "Rate limit; see Retry-After",
    503: "Partner platform unavailable; see Retry-After",
}


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


def problems(*statuses: int, **descriptions: str) -> dict:
    """drf-spectacular `responses` entries for problem documents; `descriptions` override the
    default text per status (`problems(400, 404, s404="No text for this partner")`)."""
    return {
        (status, "application/problem+json"): OpenApiResponse(
            ProblemSerializer, description=descriptions.get(f"s{status}", PROBLEM_DESCRIPTIONS[status])
        )
        for status in statuses
    }
