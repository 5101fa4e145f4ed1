"""Serializer helpers shared by the apps' APIs."""

from rest_framework import serializers


class FieldsBuiltOnceSerializer(serializers.Serializer):
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
