"""The plate-token test vector of docs/partner-contract.md: computed here with only hmac and hashlib,
equal to the project's plate_token, and the same figures as the document states."""

import hashlib
import hmac
import re
from pathlib import Path

from access.plates import normalise_plate, plate_token

DOC = Path(__file__).resolve().parents[2] / "docs" / "partner-contract.md"
KEY = bytes(range(32))
TYPED = "а123вс 77"  # Cyrillic а, в, с and a space, as a resident types it
NORMALISED = "A123BC77"


def documented(row: str) -> str:
    return re.search(rf"^\| {row} \| `([^`]+)` ", DOC.read_text(), re.M).group(1)


def test_the_vector_with_only_the_standard_library():
    expected = hmac.new(KEY, NORMALISED.encode("ascii"), hashlib.sha256).hexdigest()
    assert normalise_plate(TYPED) == NORMALISED
    assert plate_token(key=KEY, plate=TYPED) == expected
    assert plate_token(key=KEY, plate="A 123 BC-77") == expected


def test_the_document_states_the_same_vector():
    assert documented("key \\(hex\\)") == KEY.hex()
    assert documented("plate as typed") == TYPED
    assert documented("normalised") == NORMALISED
    assert documented("token") == hmac.new(KEY, NORMALISED.encode("ascii"), hashlib.sha256).hexdigest()
