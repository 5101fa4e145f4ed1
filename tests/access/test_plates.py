"""Plate normalisation: one normal form for every spelling, and the formats we refuse."""

import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework import serializers

from access.plates import (
    MAX_INPUT_LENGTH,
    PLATE_SPELLING,
    InvalidPlate,
    PlateField,
    normalise_plate,
    plate_formats,
    plate_token,
)


@pytest.mark.parametrize(
    ("raw", "normalised", "kind"),
    [
        # private L DDD LL RR(R)
        ("А123ВС77", "A123BC77", "private"),
        ("A123BC77", "A123BC77", "private"),
        ("а123вс 77", "A123BC77", "private"),
        ("a123bc77", "A123BC77", "private"),
        ("А 123 ВС 777", "A123BC777", "private"),
        ("А-123-ВС-777", "A123BC777", "private"),
        ("A123ВC77", "A123BC77", "private"),  # Latin and Cyrillic mixed
        ("  е 001 кх 50 ", "E001KX50", "private"),
        ("М.654.ТУ.97", "M654TY97", "private"),
        ("Х963ВЕ\u00a050", "X963BE50", "private"),  # no-break space
        # taxi LL DDD RR(R)
        ("АВ12377", "AB12377", "taxi"),
        ("ав 123 77", "AB12377", "taxi"),
        ("ab-123-77", "AB12377", "taxi"),
        ("ТХ 456 178", "TX456178", "taxi"),  # a 3-digit region; also reads as a trailer
        # trailer LL DDDD RR(R)
        ("АВ123477", "AB123477", "trailer"),
        ("ав 1234 77", "AB123477", "trailer"),
        ("AB-1234-777", "AB1234777", "trailer"),
        # motorcycle DDDD LL RR(R)
        ("1234АВ77", "1234AB77", "motorcycle"),
        ("1234 ав 77", "1234AB77", "motorcycle"),
        ("1234-km-750", "1234KM750", "motorcycle"),
    ],
)
def test_normal_form(raw, normalised, kind):
    assert normalise_plate(raw) == normalised
    assert kind in plate_formats(normalised)
    assert normalise_plate(normalised) == normalised  # idempotent


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("Д123ВС77", "invalid_characters"),  # Д is not a plate letter
        ("A123BD77", "invalid_characters"),  # nor is Latin D
        ("A123BC77!", "invalid_characters"),
        ("Ж123ЖЖ77", "invalid_characters"),
        ("A000BC77", "invalid_number"),
        ("AB00077", "invalid_number"),
        ("0000AB77", "invalid_number"),
        ("A123BC00", "invalid_region"),
        ("A123BC877", "invalid_region"),
        ("A123BC7", "invalid_format"),  # 1-digit region
        ("A123BC7777", "invalid_format"),  # 4-digit region
        ("A12BC77", "invalid_format"),
        ("AB123", "invalid_format"),
        ("123AB", "invalid_format"),
        ("ABC12377", "invalid_format"),
        ("A" * 30, "too_long"),
    ],
)
def test_rejected(raw, code):
    with pytest.raises(InvalidPlate) as caught:
        normalise_plate(raw)
    assert caught.value.code == code
    assert caught.value.message


def test_plate_token_is_hmac_of_the_normal_form():
    key = b"k" * 32
    expected = hmac.new(key, b"A123BC77", hashlib.sha256).hexdigest()
    assert plate_token(key=key, plate="а123вс 77") == expected
    assert plate_token(key=key, plate="A-123-BC-77") == expected
    assert plate_token(key=b"x" * 32, plate="A123BC77") != expected
    with pytest.raises(InvalidPlate):
        plate_token(key=key, plate="not a plate")
    with pytest.raises(ValueError, match="empty"):
        plate_token(key=b"", plate="A123BC77")


class _PlateInput(serializers.Serializer):
    plate = PlateField()


def test_plate_field_normalises():
    serializer = _PlateInput(data={"plate": "а 123 вс 77"})
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data["plate"] == "A123BC77"


def test_plate_field_gives_a_field_error_with_the_code():
    serializer = _PlateInput(data={"plate": "Д123ВС77"})
    assert not serializer.is_valid()
    error = serializer.errors["plate"][0]
    assert error.code == "invalid_characters"
    assert "А В Е К М Н О Р С Т У Х" in str(error)


def test_plate_field_is_a_400_problem_through_the_api(rf):
    """Through DRF and the project's exception handler: 400 with errors [{field, code, detail}]."""
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class PlateApi(APIView):
        authentication_classes = ()
        permission_classes = ()

        def post(self, request):
            serializer = _PlateInput(data=request.data)
            serializer.is_valid(raise_exception=True)
            return Response(serializer.validated_data)

    ok = PlateApi.as_view()(rf.post("/x", {"plate": "ав 1234 77"}, content_type="application/json"))
    assert ok.status_code == 200
    assert ok.data == {"plate": "AB123477"}
    bad = PlateApi.as_view()(rf.post("/x", {"plate": "A000BC77"}, content_type="application/json"))
    assert bad.status_code == 400
    body = json.loads(bad.content)
    assert body["errors"] == [
        {"field": "plate", "code": "invalid_number", "detail": "The registration number cannot be all zeros."}
    ]


@pytest.mark.parametrize("spelling", ["Ａ123ВС77", "A123BC77\u00a0", "A\u2009123BC77", "A123BC\U0001d7d5\U0001d7d5"])
def test_plate_field_refuses_what_the_schema_pattern_refuses(spelling):
    """Full-width letters, no-break or thin spaces, mathematical digits: the normaliser folds
    them, but the OpenAPI schema's pattern (PLATE_SPELLING) says they are not a plate, so the API
    refuses them too."""
    assert normalise_plate(spelling).startswith("A123BC")
    assert not PLATE_SPELLING.match(spelling)
    serializer = _PlateInput(data={"plate": spelling})
    assert not serializer.is_valid()
    assert serializer.errors["plate"][0].code == "invalid_characters"


@hypothesis_settings(max_examples=300, database=None, derandomize=True)
@given(st.from_regex(PLATE_SPELLING, fullmatch=True).filter(lambda spelling: len(spelling) <= MAX_INPUT_LENGTH))
def test_every_spelling_the_schema_pattern_allows_is_accepted(spelling):
    serializer = _PlateInput(data={"plate": spelling})
    assert serializer.is_valid(), (spelling, serializer.errors)
    assert plate_formats(serializer.validated_data["plate"])
