"""OpenAPI declarations shared by the APIs (drf-spectacular): problem documents, pages and the
headers responses carry.

What every operation implies by what it is (its authentication, scopes, body, query and path
parameters: the problems it can answer, the character rule on its text inputs, no unknown keys)
is added by the schema class, core/api/autoschema.py; views declare only what is their own
(`problems(404, 409)`).
"""

from importlib import import_module

from drf_spectacular.settings import spectacular_settings
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from core.http.problem_types import PROBLEM_CONTENT_TYPE
from core.http.request_context import ACCEPTABLE_REQUEST_ID

ProblemSerializer = inline_serializer(
    "Problem",
    fields={
        "type": serializers.CharField(help_text="e.g. /problems/missing-scope, /problems/outside-schedule"),
        "title": serializers.CharField(help_text="Short, in the language the request negotiated; do not match on it"),
        "status": serializers.IntegerField(),
        "detail": serializers.CharField(),
        "instance": serializers.CharField(required=False),
        "request_id": serializers.CharField(required=False),
        "errors": inline_serializer(
            "ProblemFieldError",
            fields={
                "field": serializers.CharField(help_text="Dotted name of the field or parameter; empty: the body"),
                "code": serializers.CharField(help_text="e.g. required, unknown_field, forbidden_character"),
                "detail": serializers.CharField(),
            },
            many=True, required=False, help_text="Validation errors (400)",
        ),
    },
)

PROBLEM_DESCRIPTIONS = {
    400: "Invalid request (`errors` lists field, code, detail)",
    401: "No or invalid access token",
    403: "Missing scope (`/problems/missing-scope`, `required_scope`) or a rule failed (`reason`)",
    404: "Not found - or not yours",
    405: "Method not allowed (see Allow)",
    406: "No acceptable representation: the API answers application/json only",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Idempotency-Key reused for another device",
    429: "Rate limit; see Retry-After",
    503: "Partner platform unavailable; see Retry-After",
}
SHARED_CACHE_UNAVAILABLE = (
    "A backing service is briefly down (`/problems/shared-cache-unavailable`); nothing changed, retry after "
    "Retry-After"
)

# Response headers, by status (every response carries X-Request-ID).
REQUEST_ID_HEADER = {
    "schema": {"type": "string", "pattern": ACCEPTABLE_REQUEST_ID.pattern},
    "description": "The request's id (the caller's X-Request-ID if it was a safe token); in every log line "
                   "and audit event of the request",
    "required": True,
}
STATUS_HEADERS = {
    "401": {"WWW-Authenticate": {
        "schema": {"type": "string"}, "required": True, "description": "The authentication scheme (Bearer)",
    }},
    "405": {"Allow": {"schema": {"type": "string"}, "required": True, "description": "The methods allowed"}},
    "429": {"Retry-After": {
        "schema": {"type": "integer", "minimum": 0}, "required": True, "description": "Seconds to wait",
    }},
    "503": {"Retry-After": {
        "schema": {"type": "integer", "minimum": 0}, "required": True, "description": "Seconds to wait",
    }},
}


def response_headers(status_code: str) -> dict:
    """The headers a response of `status_code` carries, as OpenAPI header objects."""
    return {"X-Request-ID": REQUEST_ID_HEADER, **STATUS_HEADERS.get(status_code, {})}


def problem_response(status: int, description: str | None = None) -> OpenApiResponse:
    return OpenApiResponse(ProblemSerializer, description=description or PROBLEM_DESCRIPTIONS[status])


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
        (status, PROBLEM_CONTENT_TYPE): problem_response(status, descriptions.get(f"s{status}"))
        for status in statuses
    }


def api_schema() -> dict:
    """The OpenAPI document /api/schema/ serves: the operations of every URLconf in
    SPECTACULAR_SETTINGS["SERVE_URLCONF"] (the public and the partner pool's)."""
    patterns = [pattern for name in spectacular_settings.SERVE_URLCONF for pattern in import_module(name).urlpatterns]
    return spectacular_settings.DEFAULT_GENERATOR_CLASS(patterns=patterns).get_schema(request=None, public=True)
