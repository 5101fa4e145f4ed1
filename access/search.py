"""What managers can find residents and cars by in the admin, although names, phones, e-mails
and plates are encrypted: keyed blind indexes (core.crypto.blind_index) of normalised values.

- a resident by each word of the full name (case, "ё"/"е" and punctuation aside: "Иванов",
  "иван иванов" and "ИВАНОВ-Петров" all find "Иванов-Петров Иван"; every word of the term must
  match a whole word of the name - no prefixes), by phone (normalised to E.164, so
  "8 (916) 000-00-01" finds "+79160000001") and by e-mail (case aside). Word-level rather than
  whole-name matching, because managers search by surname; the cost is that the database shows
  which residents share a name word (never the word), much as the plain flat numbers do;
- a car by its plate (normalised like access.plates: "а123вс 77" finds "A123BC77").

The digests are written by the services that write the values (access.services.residents,
vehicles), in the same transaction.
"""

import re

from access.plates import InvalidPlate, normalise_plate
from core.crypto.blind_index import blind_index

_WORD = re.compile(r"[^\W_]+")
_PHONE_TERM = re.compile(r"^\+?[\d\s().-]+$")


def name_words(value: str) -> set[str]:
    return set(_WORD.findall(value.casefold().replace("ё", "е")))


def normalise_phone(value: str) -> str | None:
    """E.164 ("+79160000001"), reading 8XXXXXXXXXX, 7XXXXXXXXXX and 9XXXXXXXXX as Russian numbers;
    None for anything that is not a phone number."""
    value = value.strip()
    if not _PHONE_TERM.match(value):
        return None
    digits = re.sub(r"\D", "", value)
    if value.startswith("+"):
        number = digits
    elif len(digits) == 11 and digits[0] in "78":
        number = "7" + digits[1:]
    elif len(digits) == 10 and digits[0] == "9":
        number = "7" + digits
    else:
        return None
    return f"+{number}" if 8 <= len(number) <= 15 else None


def normalise_email(value: str) -> str | None:
    value = value.strip().casefold()
    return value if "@" in value else None


def resident_digests(*, full_name: str, phone: str, email: str) -> set[str]:
    """Every digest a resident is found by."""
    digests = {blind_index("name", word) for word in name_words(full_name)}
    if phone := normalise_phone(phone or ""):
        digests.add(blind_index("phone", phone))
    if email := normalise_email(email or ""):
        digests.add(blind_index("email", email))
    return digests


def resident_term_digests(term: str) -> list[str]:
    """The digests a search term asks for, all of which a resident must have (empty: none)."""
    if phone := normalise_phone(term):
        return [blind_index("phone", phone)]
    if email := normalise_email(term):
        return [blind_index("email", email)]
    return sorted(blind_index("name", word) for word in name_words(term))


def plate_digest(plate: str) -> str | None:
    """The digest of a plate (normalised; None if it is no plate)."""
    try:
        return blind_index("plate", normalise_plate(plate))
    except InvalidPlate:
        return None


def search_index_rebuild(*, resident_model, term_model, vehicle_model) -> int:
    """Recompute every digest (a new SEARCH_INDEX_KEY, or rows written before the index existed).
    Takes the models so a migration can pass its historical ones. Returns the rows indexed."""
    count = 0
    for resident in resident_model.objects.all().iterator():
        digests = resident_digests(full_name=resident.full_name, phone=resident.phone, email=resident.email)
        term_model.objects.filter(resident_id=resident.pk).delete()
        term_model.objects.bulk_create([term_model(resident_id=resident.pk, digest=d) for d in sorted(digests)])
        count += 1
    for vehicle in vehicle_model.objects.all().iterator():
        vehicle_model.objects.filter(pk=vehicle.pk).update(plate_index=plate_digest(vehicle.plate) or "")
        count += 1
    return count
