"""The schema class of every API view (REST_FRAMEWORK's DEFAULT_SCHEMA_CLASS): what an operation
implies by what it is, declared once here instead of in each view.

- Problems (application/problem+json) each operation can answer by its kind: 406 (the APIs
  speak JSON only); 401 and 403 behind authentication; the resident API's 429 (per-user rate
  limit) and, for writes, 503 while the shared cache is down; 400, 413 and 415 on a method that
  reads a body; 400 when query parameters are validated; 404 when the path names an object.
  A view's own `problems(...)` (core/api/schema.py) adds the rest and overrides descriptions.
- Headers: X-Request-ID on every response; WWW-Authenticate on 401, Allow on 405, Retry-After
  on 429 and 503.
- The input rules (core/api/serializers.py): request bodies of BodySerializers declare
  `additionalProperties: false`; every free text input of an input serializer carries the
  character rule as its `pattern` (a field with its own pattern or format keeps it: those are
  stricter).
"""

from django.core.validators import RegexValidator
from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import SAFE_METHODS, AllowAny
from rest_framework.views import APIView

from core.api import oauth_schemes  # noqa: F401 - registers the OAuth2 security schemes
from core.api.resident import ResidentApi
from core.api.schema import SHARED_CACHE_UNAVAILABLE, problem_response, response_headers
from core.api.serializers import BodySerializer, QuerySerializer, text_pattern
from core.http.problem_types import PROBLEM_CONTENT_TYPE

BODY_METHODS = ("POST", "PUT", "PATCH")


class ApiAutoSchema(AutoSchema):
    def implied_problems(self) -> dict[int, str | None]:
        """{status: description or None (the default)} of the problems this operation implies."""
        view, method = self.view, self.method
        implied: dict[int, str | None] = {}
        if type(view).perform_content_negotiation is APIView.perform_content_negotiation:
            implied[406] = None
        if view.get_authenticators() and not any(isinstance(p, AllowAny) for p in view.get_permissions()):
            implied[401] = None
            implied[403] = None
        if isinstance(view, ResidentApi):
            implied[429] = None
            if method not in SAFE_METHODS:
                implied[503] = SHARED_CACHE_UNAVAILABLE
        if method in BODY_METHODS:
            implied.update({400: None, 413: None, 415: None})
        locations = {parameter["in"] for parameter in self._get_parameters()}
        if "query" in locations:
            implied[400] = None
        if "path" in locations:
            implied[404] = None
        return implied

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status, description in self.implied_problems().items():
            code = str(status)
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    problem_response(status, description), code, [PROBLEM_CONTENT_TYPE], direction)
        for code, response in responses.items():
            response["headers"] = {**response_headers(code), **response.get("headers", {})}
        return dict(sorted(responses.items()))

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if type(serializer).__dict__.get("__doc__") is None:  # not a base class's docstring
            schema.pop("description", None)
        if direction == "request" and isinstance(serializer, BodySerializer):
            schema["additionalProperties"] = False
        return schema

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        parent = getattr(field, "parent", None)
        if (direction == "request" and isinstance(parent, QuerySerializer) and isinstance(schema, dict)
                and schema.get("type") == "string" and not {"format", "enum", "pattern"} & schema.keys()
                and not any(isinstance(validator, RegexValidator) for validator in field.validators)):
            schema["pattern"] = text_pattern(multiline=field.field_name in parent.multiline_fields)
        return schema
