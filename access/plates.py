"""Russian licence plates: one normal form, format validation, and per-partner plate tokens.

Normal form: Unicode NFKC, upper-case, separators (whitespace, hyphens, dots) removed, and the
twelve Cyrillic letters Russian plates use (А В Е К М Н О Р С Т У Х) mapped to their Latin
twins, so a resident's Cyrillic input and a camera's Latin output become the same string.

Formats accepted (GOST R 50577; L = one of the 12 letters, D = digit, RR(R) = region):
=============  ===================  ==============
private        ``L DDD LL RR(R)``   ``A123BC77``
taxi           ``LL DDD RR(R)``     ``AB12377``
trailer        ``LL DDDD RR(R)``    ``AB123477``
motorcycle     ``DDDD LL RR(R)``    ``1234AB77``
=============  ===================  ==============
A taxi plate with a 3-digit region and a trailer plate with a 2-digit region can be the same
string (``AB123777``); both are valid and tokenise alike, so the ambiguity does no harm. An
all-zero serial number (``A000AA77``) is never issued and is rejected; a region is 01-99 or a
3-digit code starting with 1, 2, 7 or 9.
"""

import hashlib
import hmac
import re
import unicodedata

from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

PLATE_LETTERS = "ABEKMHOPCTYX"
CYRILLIC_TO_LATIN = str.maketrans("АВЕКМНОРСТУХ", "ABEKMHOPCTYX")
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015.·_]+")
_L = f"[{PLATE_LETTERS}]"
_REGION = r"(?P<region>\d{2,3})"
FORMATS = {
    "private": re.compile(rf"^{_L}(?P<number>\d{{3}}){_L}{{2}}{_REGION}$"),
    "taxi": re.compile(rf"^{_L}{{2}}(?P<number>\d{{3}}){_REGION}$"),
    "trailer": re.compile(rf"^{_L}{{2}}(?P<number>\d{{4}}){_REGION}$"),
    "motorcycle": re.compile(rf"^(?P<number>\d{{4}}){_L}{{2}}{_REGION}$"),
}
MAX_INPUT_LENGTH = 24


def _spelling_pattern() -> str:
    """The plates the API accepts, as they may be typed: one of FORMATS with a valid region and a
    number that is not all zeros, letters Latin or Cyrillic in either case, and up to three
    spaces, hyphens, dots, underscores or middle dots before, between and after them. Built so
    that a match always normalises (the OpenAPI schema declares it; PlateField refuses anything
    else)."""
    sep = "[ ._\u00b7\u2010-\u2015-]{0,3}"
    letter = f"[{PLATE_LETTERS}{PLATE_LETTERS.lower()}АВЕКМНОРСТУХавекмнорстух]"
    digit = "[0-9]"

    def seq(*parts: str) -> str:
        return sep.join(parts)

    def not_all_zeros(digits: int) -> str:
        return "(?:" + "|".join(seq(*["0"] * first, "[1-9]", *[digit] * (digits - first - 1))
                                for first in range(digits)) + ")"

    region = "(?:" + "|".join([seq("0", "[1-9]"), seq("[1-9]", digit), seq("[1279]", digit, digit)]) + ")"
    spelled = [
        seq(letter, not_all_zeros(3), letter, letter, region),  # private
        seq(letter, letter, not_all_zeros(3), region),  # taxi
        seq(letter, letter, not_all_zeros(4), region),  # trailer
        seq(not_all_zeros(4), letter, letter, region),  # motorcycle
    ]
    return f"^{sep}(?:{'|'.join(spelled)}){sep}$"


PLATE_SPELLING = re.compile(_spelling_pattern())


class InvalidPlate(ValueError):
    """A plate that is not a Russian plate of a supported format; `code` is machine-readable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _region_ok(region: str) -> bool:
    if len(region) == 2:
        return region != "00"
    return region[0] in "1279"


def plate_formats(normalised: str) -> list[str]:
    """The names of the formats a NORMALISED plate matches (empty if none)."""
    found = []
    for name, pattern in FORMATS.items():
        match = pattern.match(normalised)
        if match and set(match["number"]) != {"0"} and _region_ok(match["region"]):
            found.append(name)
    return found


def normalise_plate(raw: str) -> str:
    """The normal form of `raw`; raises InvalidPlate(code, message) if it is not a valid plate.

    Codes: ``empty``, ``too_long``, ``invalid_characters`` (a letter Russian plates do not use),
    ``invalid_number`` (all zeros), ``invalid_region``, ``invalid_format``.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPlate("empty", gettext("Enter a licence plate."))
    if len(raw) > MAX_INPUT_LENGTH:
        raise InvalidPlate("too_long", gettext("A licence plate has at most %(count)s characters.")
                           % {"count": MAX_INPUT_LENGTH})
    plate = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw)).upper().translate(CYRILLIC_TO_LATIN)
    bad = sorted({ch for ch in plate if not (ch.isascii() and ch.isdigit()) and ch not in PLATE_LETTERS})
    if bad:
        raise InvalidPlate(
            "invalid_characters",
            gettext("Russian plates use digits and the letters А В Е К М Н О Р С Т У Х only."),
        )
    if plate_formats(plate):
        return plate
    # Say why a plate that has the right shape is still wrong.
    for pattern in FORMATS.values():
        match = pattern.match(plate)
        if match and set(match["number"]) == {"0"}:
            raise InvalidPlate("invalid_number", gettext("The registration number cannot be all zeros."))
        if match and not _region_ok(match["region"]):
            raise InvalidPlate("invalid_region", gettext("The region code is not a valid Russian region."))
    raise InvalidPlate(
        "invalid_format",
        gettext("Not a Russian plate format: private А123ВС77, taxi АВ12377, trailer АВ123477 or motorcycle "
                "1234АВ77."),
    )


def plate_token(*, key: bytes, plate: str) -> str:
    """Hex HMAC-SHA256 of the normalised plate under a partner's plate-token key."""
    if not key:
        raise ValueError("plate token key is empty")
    return hmac.new(key, normalise_plate(plate).encode("ascii"), hashlib.sha256).hexdigest()


@extend_schema_field({"type": "string", "maxLength": MAX_INPUT_LENGTH, "pattern": PLATE_SPELLING.pattern})
class PlateField(serializers.CharField):
    """DRF field: accepts a valid plate in any spelling PLATE_SPELLING allows, yields the normal
    form, else a 400 (the codes of `normalise_plate`; `invalid_characters` for a character the
    normaliser would fold but the API does not take, e.g. full-width letters)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_INPUT_LENGTH)
        kwargs.setdefault("trim_whitespace", False)  # PLATE_SPELLING says where spaces may be
        kwargs.setdefault("help_text", "Licence plate, Cyrillic or Latin, e.g. \"А123ВС 77\"")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            plate = normalise_plate(value)
        except InvalidPlate as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from None
        if not PLATE_SPELLING.match(value):
            raise serializers.ValidationError(
                "Type the plate with digits, the letters А В Е К М Н О Р С Т У Х (Cyrillic or Latin) and "
                "spaces or hyphens only.", code="invalid_characters")
        return plate
