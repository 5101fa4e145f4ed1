"""Serializer helpers shared by the apps' APIs, and the rules every text input obeys.

One rule for every text input, in one place (`input_errors`): a string (a key or a value, at any
depth) must not hold control characters - C0 (NUL included), DEL, C1 - nor lone UTF-16 surrogates
(which no database can store); TAB, LF and CR are allowed only in the fields a serializer lists in
`multiline_fields` (an SDP offer). And a JSON body holds only the keys its operation declares
(the partner contract review: a whitelist of parameters). Each breach is a field-level error
(`forbidden_character`, `unknown_field`), so the caller gets 400 naming the field.

Every input serializer derives from `BodySerializer` (request bodies: both rules) or
`QuerySerializer` (query parameters: the character rule; unknown parameters such as `page` are
left to others); an operation that takes no body calls `no_body(request)`. Partner webhooks apply
`input_errors` to their envelope themselves (partners/webhooks.py). tests/core/test_input_rules.py
holds every endpoint of the URL conf to it.
"""

import re
from collections.abc import Mapping

from django.http import QueryDict
from rest_framework import serializers

# C0 controls but TAB, LF, CR; DEL and C1; lone surrogates (JSON "\ud800" decodes to one)
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
LINE_BREAKS = re.compile("[\t\n\r]")
FORBIDDEN_DETAIL = "Control characters are not allowed here."
UNKNOWN_DETAIL = "Unknown field."


def _error(detail: str, code: str) -> list:
    return [serializers.ErrorDetail(detail, code=code)]


def _text_breaches(value, path: str, multiline: frozenset, errors: dict) -> None:
    if isinstance(value, str):
        if FORBIDDEN.search(value) or (path not in multiline and LINE_BREAKS.search(value)):
            errors.setdefault(path or "non_field_errors", _error(FORBIDDEN_DETAIL, "forbidden_character"))
    elif isinstance(value, Mapping):
        items = value.lists() if isinstance(value, QueryDict) else value.items()
        for key, item in items:
            name = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and (FORBIDDEN.search(key) or LINE_BREAKS.search(key)):
                errors.setdefault(path or "non_field_errors", _error(FORBIDDEN_DETAIL, "forbidden_character"))
                continue
            _text_breaches(item, name, multiline, errors)
    elif isinstance(value, list | tuple):
        for item in value:
            _text_breaches(item, path, multiline, errors)


def input_errors(data, *, known=None, multiline=frozenset()) -> dict:
    """The field errors (DRF's shape: {field: [ErrorDetail]}) of `data` under the input rules.

    `known`: the keys allowed at the top level (None: any); `multiline`: the dotted field names
    where TAB, LF and CR are allowed. Empty when `data` passes."""
    errors: dict = {}
    if isinstance(data, Mapping) and known is not None:
        for key in data:
            if key not in known:
                errors[str(key) if not FORBIDDEN.search(str(key)) else "non_field_errors"] = _error(
                    UNKNOWN_DETAIL, "unknown_field")
    _text_breaches(data, "", frozenset(multiline), errors)
    return errors


class QuerySerializer(serializers.Serializer):
    """Input serializer of query parameters: control characters refused (400, `forbidden_character`)."""

    multiline_fields: frozenset = frozenset()
    refuses_unknown = False

    def to_internal_value(self, data):
        known = None
        if self.refuses_unknown:
            known = {name for name, field in self.fields.items() if not field.read_only}
        errors = input_errors(data, known=known, multiline=self.multiline_fields)
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class BodySerializer(QuerySerializer):
    """Input serializer of a request body: unknown keys (400, `unknown_field`, naming each) and
    control characters refused. Nested serializers of a body derive from it too."""

    refuses_unknown = True


class _NoBody(BodySerializer):
    pass


def no_body(request) -> None:
    """For an operation that takes no body: any key in one is unknown (400 naming it)."""
    _NoBody(data=request.data).is_valid(raise_exception=True)


class FieldsBuiltOnceSerializer(BodySerializer):
    """A serializer whose fields are built once per class instead of once per instance.

    DRF deep-copies every declared field for each serializer instance; on a hot endpoint that
    copy costs more than the validation itself. For input serializers whose fields are plain
    stateless validators (regex, choice, date-time, nested serializers of the same kind - no
    `HiddenField`, no `CurrentUserDefault`, nothing that reads `self.context` or `self.instance`)
    the first instance's bound fields can serve every later one. Validation results and errors
    live on each instance as usual.
    """

    @property
    def fields(self):
        cls = type(self)
        built = cls.__dict__.get("_fields_built_once")
        if built is None:
            built = super().fields
            cls._fields_built_once = built
        return built
