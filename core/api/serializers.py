"""Serializer helpers shared by the apps' APIs, and the rules every text input obeys.

One rule for every text input, in one place (`input_errors`): a string (a key or a value, at any
depth) must not hold control characters - C0 (NUL included), DEL, C1 - nor lone UTF-16 surrogates
(which no database can store); TAB, LF and CR are allowed only in the fields a serializer lists in
`multiline_fields` (an SDP offer). And a JSON body holds only the keys its operation declares
(the partner contract review: a whitelist of parameters), each with the JSON type the schema
gives it (DRF would read `5` as the text "5" and `"5"` or `true` as a number). Each breach is a
field-level error (`forbidden_character`, `unknown_field`, `invalid_type`), so the caller gets 400
naming the field.

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

# C0 controls but TAB, LF, CR; DEL and C1 (as regex class ranges, shared with the schema's patterns)
_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_LINE_BREAKS = r"\t\n\r"
# ... and lone surrogates (JSON "\ud800" decodes to one)
FORBIDDEN = re.compile(f"[{_CONTROLS}\ud800-\udfff]")
LINE_BREAKS = re.compile(f"[{_LINE_BREAKS}]")
FORBIDDEN_DETAIL = "Control characters are not allowed here."
UNKNOWN_DETAIL = "Unknown field."


def text_pattern(*, multiline: bool = False) -> str:
    """The character rule as a JSON Schema `pattern` (the OpenAPI schema declares it on every text
    input: core.api.autoschema). Lone surrogates are left out: no regex dialect of the schema's
    readers takes them, and only a JSON escape can carry one."""
    return f"^[^{_CONTROLS}{'' if multiline else _LINE_BREAKS}]*$"


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


# The JSON types a field of a JSON body takes (the rest of a field's rules are its own).
_JSON_TYPES = (
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.PrimaryKeyRelatedField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.DecimalField, (int, float, str), "a number"),
    (serializers.ChoiceField, None, "one of the choices"),
    (serializers.CharField, (str,), "a string"),
    (serializers.SlugRelatedField, (str,), "a string"),
    (serializers.DateTimeField, (str,), "a date-time string"),
    (serializers.DateField, (str,), "a date string"),
    (serializers.DictField, (dict,), "an object"),
    (serializers.ListField, (list,), "an array"),
)


def _json_type(field) -> tuple[tuple, str] | None:
    for kind, types, label in _JSON_TYPES:
        if isinstance(field, kind):
            if types is None:  # a choice: the types of its choices
                types = tuple({type(choice) for choice in field.choices}) or (str,)
            return types, label
    return None


class BodySerializer(QuerySerializer):
    """Input serializer of a request body: unknown keys (400, `unknown_field`, naming each),
    control characters and, in a JSON body, a value of another JSON type than its field's
    (`invalid_type`) refused. Nested serializers of a body derive from it too."""

    refuses_unknown = True

    def to_internal_value(self, data):
        if isinstance(data, dict) and not isinstance(data, QueryDict):  # JSON (a form's values are text)
            errors = self._type_errors(data)
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)

    def _type_errors(self, data: dict) -> dict:
        cls = type(self)
        plan = cls.__dict__.get("_json_type_plan")
        if plan is None:  # once per class: the fields of an input serializer do not change
            plan = tuple((name, *found) for name, field in self.fields.items()
                         if not field.read_only and (found := _json_type(field)) is not None)
            cls._json_type_plan = plan
        errors = {}
        for name, types, label in plan:
            value = data.get(name)
            if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
                errors[name] = _error(f"Expected {label}.", "invalid_type")
        return errors


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
