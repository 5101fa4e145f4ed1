"""The blind index of residents' phones and e-mails: exact-match lookups of encrypted columns.

`access.Resident.phone` and `.email` are encrypted at rest (random nonces), so the database
cannot find "the resident whose phone is +7 916 ..."; `ContactIndex` keeps an HMAC-SHA256 of
each normalised value under a key derived from PSEUDONYM_KEY, written whenever a resident is
saved (identity.receivers) and rebuilt by `manage.py identity_reindex_contacts` (needed after
PSEUDONYM_KEY changes). A hash says nothing without the key; equal values give equal hashes.
"""

import hashlib
import hmac
import re

from django.conf import settings

from core.copy_insert import copy_values
from identity.models import ContactIndex

PHONE = ContactIndex.Kind.PHONE
EMAIL = ContactIndex.Kind.EMAIL

_NON_DIGITS = re.compile(r"\D")


def normalise_phone(value: str) -> str:
    """Digits only, Russian trunk prefix 8 -> country code 7 ("8 (916) 000-00-01" == "+79160000001")."""
    digits = _NON_DIGITS.sub("", value or "")
    if len(digits) == 11 and digits.startswith("8"):
        digits = "7" + digits[1:]
    return digits if len(digits) >= 7 else ""


def normalise_email(value: str) -> str:
    value = (value or "").strip().casefold()
    return value if "@" in value else ""


_NORMALISE = {PHONE: normalise_phone, EMAIL: normalise_email}


def contact_digest(kind: str, value: str) -> str | None:
    """The index digest of `value` as a `kind` contact, or None when it is no such contact."""
    normalised = _NORMALISE[kind](value)
    if not normalised:
        return None
    key = hmac.new(settings.PSEUDONYM_KEY.encode(), b"identity.contact-index", hashlib.sha256).digest()
    return hmac.new(key, f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()


def guess_kind(identifier: str) -> str | None:
    """What a sign-in name looks like: an e-mail, a phone number, or neither (a username)."""
    identifier = (identifier or "").strip()
    if "@" in identifier:
        return EMAIL
    if identifier and re.fullmatch(r"\+?[\d\s()-]{7,24}", identifier):
        return PHONE
    return None


def _index_rows(index_model, resident_id: int, phone: str, email: str) -> list:
    rows = []
    for kind, value in ((PHONE, phone), (EMAIL, email)):
        digest = contact_digest(kind, value)
        if digest:
            rows.append(index_model(resident_id=resident_id, kind=kind, digest=digest))
    return rows


def index_resident(*, resident_id: int, phone: str, email: str, index_model=ContactIndex) -> None:
    """Write the index rows of one resident (replacing the old ones)."""
    index_model.objects.filter(resident_id=resident_id).delete()
    index_model.objects.bulk_create(_index_rows(index_model, resident_id, phone, email))


def index_residents(*, residents) -> None:
    """`index_resident` for many residents at once (one DELETE, one COPY)."""
    residents = list(residents)
    ContactIndex.objects.filter(resident_id__in=[resident.pk for resident in residents]).delete()
    copy_values(ContactIndex, fields=["resident_id", "kind", "digest"], rows=(
        (row.resident_id, row.kind, row.digest) for r in residents for row in _index_rows(ContactIndex, r.pk, r.phone,
                                                                                           r.email)
    ))


def contacts_taken(kind: str, values) -> set[str]:
    """Those of `values` (as given) that some resident already has as their `kind` contact."""
    digests = {}
    for value in values:
        digest = contact_digest(kind, value)
        if digest:
            digests.setdefault(digest, []).append(value)
    taken = set()
    for digest in ContactIndex.objects.filter(kind=kind, digest__in=list(digests)).values_list("digest", flat=True):
        taken.update(digests[digest])
    return taken


def resident_ids_with(kind: str, value: str) -> list[int]:
    """Residents whose `kind` contact equals `value` (after normalisation); at most two are
    read, so callers can tell "exactly one" from "ambiguous"."""
    digest = contact_digest(kind, value)
    if digest is None:
        return []
    return list(ContactIndex.objects.filter(kind=kind, digest=digest).values_list("resident_id", flat=True)[:2])
