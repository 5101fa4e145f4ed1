"""Keyed blind indexes: exact-match lookups over encrypted columns.

An encrypted column (core.crypto.fields) cannot be searched by the database. Beside it a service
stores `blind_index(kind, value)` of the value's normalised form - HMAC-SHA256 under
SEARCH_INDEX_KEY, a key of its own (never the encryption keys, never PSEUDONYM_KEY) - and a
search computes the same digest of the normalised search term and compares. Only equality can be
found: no prefix, substring or order, so the index tells nothing about a value without the key
beyond which rows share it. `kind` separates uses ("phone", "name", "plate"), so equal strings of
two kinds never match. A new key means recomputing every digest (`manage.py rebuild_search_index`).
"""

import hashlib
import hmac

from django.conf import settings


def blind_index(kind: str, value: str) -> str:
    """64 hex characters: HMAC-SHA256(SEARCH_INDEX_KEY, "kind:value") of a normalised value."""
    return hmac.new(settings.SEARCH_INDEX_KEY.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
