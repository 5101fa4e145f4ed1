"""FieldsBuiltOnceSerializer: fields shared by every instance, results and errors not."""

from rest_framework import serializers

from core.api.serializers import FieldsBuiltOnceSerializer


class Inner(FieldsBuiltOnceSerializer):
    kind = serializers.ChoiceField(choices=["a", "b"])


class Outer(FieldsBuiltOnceSerializer):
    ref = serializers.RegexField(r"^[a-z]{1,8}$")
    at = serializers.DateTimeField()
    inner = Inner()


GOOD = {"ref": "gate", "at": "2026-01-01T00:00:00Z", "inner": {"kind": "a"}}


def test_fields_are_built_once_per_class():
    assert Outer(data=GOOD).fields is Outer(data=GOOD).fields
    assert Inner().fields is not Outer().fields


def test_each_instance_keeps_its_own_result_and_errors():
    bad = Outer(data={**GOOD, "ref": "NOT OK", "inner": {"kind": "z"}})
    good = Outer(data=GOOD)
    other_bad = Outer(data={**GOOD, "at": "yesterday"})
    assert not bad.is_valid()
    assert good.is_valid(), good.errors
    assert not other_bad.is_valid()
    assert set(bad.errors) == {"ref", "inner"}
    assert bad.errors["inner"]["kind"]
    assert set(other_bad.errors) == {"at"}
    assert good.validated_data["inner"] == {"kind": "a"}
    assert good.validated_data["ref"] == "gate"
