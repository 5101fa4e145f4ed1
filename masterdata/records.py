"""The records of the integration API: one input serializer per type, under the one input rule
(core.api.serializers: unknown keys and control characters are field errors).

Every record carries `type`, the source's `id`, and its `version` (an integer) or `updated_at`
(a date-time, kept as microseconds since the epoch) - exactly one of the two; `deleted: true`
makes it a deletion (the type's other fields may then be left out). References to other records
(`company`, `building`, `unit`, `resident`) are the source's ids of those records.
"""

import datetime

from rest_framework import serializers

from access.models import Residency
from core.api.serializers import FieldsBuiltOnceSerializer, input_errors
from masterdata.models import Entity

EXTERNAL_ID = r"^[A-Za-z0-9][A-Za-z0-9:._/@-]{0,63}$"
EXTERNAL_ID_HELP = "The source's id: 1-64 of A-Z a-z 0-9 : . _ / @ - (starting with a letter or digit)."
MAX_VERSION = 2**63 - 1


def external_id(**kwargs) -> serializers.RegexField:
    return serializers.RegexField(EXTERNAL_ID, max_length=64, help_text=kwargs.pop("help_text", EXTERNAL_ID_HELP),
                                  **kwargs)


class RecordHeader(FieldsBuiltOnceSerializer):
    """What every record carries."""

    type = serializers.ChoiceField(choices=Entity.choices)
    id = external_id()
    version = serializers.IntegerField(min_value=0, max_value=MAX_VERSION, required=False,
                                       help_text="The source's version of the record (higher = newer).")
    updated_at = serializers.DateTimeField(required=False,
                                           help_text="Instead of `version`: when the source last changed it.")
    deleted = serializers.BooleanField(default=False, help_text="The record was deleted at the source.")

    def validate(self, attrs):
        if ("version" in attrs) == ("updated_at" in attrs):
            raise serializers.ValidationError(
                {"version": serializers.ErrorDetail("Give exactly one of version and updated_at.", code="version")}
            )
        return attrs


def version_of(attrs: dict) -> int:
    """The record's version as one comparable integer."""
    if "version" in attrs:
        return attrs["version"]
    moment = attrs["updated_at"]
    return (moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)) // datetime.timedelta(microseconds=1)


class CompanyRecord(RecordHeader):
    name = serializers.CharField(max_length=200)


class BuildingRecord(RecordHeader):
    company = external_id(help_text="The source's id of the building's management company.")
    name = serializers.CharField(max_length=200)
    address = serializers.CharField(max_length=300)
    timezone = serializers.CharField(max_length=64, default="Europe/Moscow", help_text="IANA time zone.")


class UnitRecord(RecordHeader):
    building = external_id(help_text="The source's id of the flat's building.")
    number = serializers.CharField(max_length=16)


class ResidentRecord(RecordHeader):
    company = external_id(help_text="The source's id of the resident's management company.")
    full_name = serializers.CharField(max_length=200)
    phone = serializers.CharField(max_length=32, allow_blank=True, default="")
    email = serializers.EmailField(max_length=254, allow_blank=True, default="")


class ResidencyRecord(RecordHeader):
    resident = external_id(help_text="The source's id of the resident.")
    unit = external_id(help_text="The source's id of the flat.")
    kind = serializers.ChoiceField(choices=Residency.Kind.choices)
    valid_from = serializers.DateField()
    valid_until = serializers.DateField(allow_null=True, default=None, help_text="Move-out date (exclusive).")


class VehicleRecord(RecordHeader):
    resident = external_id(help_text="The source's id of the car's owner (a resident).")
    plate = serializers.CharField(max_length=24)
    label = serializers.CharField(max_length=64, allow_blank=True, default="")


SERIALIZERS: dict[str, type[RecordHeader]] = {
    Entity.COMPANY: CompanyRecord,
    Entity.BUILDING: BuildingRecord,
    Entity.UNIT: UnitRecord,
    Entity.RESIDENT: ResidentRecord,
    Entity.RESIDENCY: ResidencyRecord,
    Entity.VEHICLE: VehicleRecord,
}


def parse_record(data) -> tuple[dict | None, dict]:
    """Validate one record: (its validated data, {}) or (None, DRF field errors)."""
    if not isinstance(data, dict):
        return None, {"non_field_errors": [serializers.ErrorDetail("A record is a JSON object.", code="invalid")]}
    kind = data.get("type")
    serializer_class = SERIALIZERS.get(kind) if isinstance(kind, str) else None
    if serializer_class is None:
        header = RecordHeader(data={key: data[key] for key in RecordHeader._declared_fields if key in data})
        header.is_valid()
        return None, header.errors or {"type": [serializers.ErrorDetail("Unknown type.", code="invalid_choice")]}
    if data.get("deleted") is True:  # the type's other fields may come along; only the header counts
        errors = input_errors(data, known=set(serializer_class._declared_fields))
        if errors:
            return None, errors
        serializer = RecordHeader(data={key: data[key] for key in RecordHeader._declared_fields if key in data})
    else:
        serializer = serializer_class(data=data)
    if not serializer.is_valid():
        return None, serializer.errors
    return serializer.validated_data, {}
