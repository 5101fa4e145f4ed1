"""A dump of the PostgreSQL database after `seed_demo` holds no resident's personal data in clear.

The demo is seeded by the real commands (`migrate`, `seed_demo`) in a subprocess, into a
database of its own on the suite's PostgreSQL server, so the dump sees committed data and no
other test's database is touched.
"""

import re

import pytest

from access.management.commands.seed_demo import RESIDENTS, _phone
from access.plates import normalise_plate
from tests.demo_database import seed_demo_database


def variants(value: str) -> set[str]:
    """The spellings a leak could take: as typed, upper/lower case, digits only, without separators."""
    found = {value, value.upper(), value.lower(), re.sub(r"[\s\-().]", "", value)}
    digits = re.sub(r"\D", "", value)
    if len(digits) >= 7:
        found.add(digits)
        found.add(digits[1:])  # without the country code
    return {v for v in found if len(v) >= 4}


def personal_data() -> set[str]:
    found: set[str] = set()
    for index, (full_name, mail, typed_plate) in enumerate(RESIDENTS):
        found |= variants(full_name) | variants(_phone(index)) | variants(f"{mail}@example.ru") | {mail}
        found |= {part for part in full_name.split() if len(part) >= 5}  # surnames and first names alone
        if typed_plate:
            found |= variants(typed_plate) | {normalise_plate(typed_plate)}
    return found


@pytest.mark.postgres
@pytest.mark.slow
def test_pg_dump_after_seed_demo_has_no_plaintext_personal_data(scratch_database, postgres_server, tmp_path):
    demo = seed_demo_database(url=scratch_database, postgres_server=postgres_server, var_dir=tmp_path)
    assert "20 residents, 16 vehicles" in demo.seed_output
    dump = demo.dump()

    # The dump is real and complete: plain data (the company, the addresses) is there in clear,
    # and the personal columns hold envelopes: 3 per resident, 1 per vehicle.
    assert "УК Северный квартал" in dump
    assert "ул. Полярная" in dump
    assert len(re.findall(r"v1:k1:[A-Za-z0-9_-]{20,}", dump)) >= 20 * 3 + 16
    secrets_in_clear = sorted(s for s in personal_data() if s in dump)
    assert secrets_in_clear == [], f"personal data in the dump: {secrets_in_clear[:10]}"


def test_the_leak_detector_finds_plaintext():
    """The check above can fail: every kind of value it looks for is recognised in a dump line."""
    index, (full_name, mail, plate) = 0, RESIDENTS[0]
    data = personal_data()
    for leaked in (full_name, full_name.split()[0], _phone(index), re.sub(r"\D", "", _phone(index)),
                   f"{mail}@example.ru", normalise_plate(plate), plate):
        line = f"42\t{leaked}\t2025-01-01"
        assert any(s in line for s in data), leaked
