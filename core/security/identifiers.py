"""Pseudonymous references: how people appear in logs and audit events.

A ref is a keyed hash (PSEUDONYM_KEY) of a kind and a primary key: stable, so events of one
person can be correlated by someone holding the key, but meaningless on its own.
"""

import functools
import hashlib
import hmac

from django.conf import settings


def pseudonymous_ref(kind: str, pk: object) -> str:
    """`kind:` + 20 hex chars of HMAC-SHA256(PSEUDONYM_KEY, "kind:pk")."""
    return _ref(settings.PSEUDONYM_KEY, f"{kind}:{pk}", kind)


@functools.lru_cache(maxsize=65_536)
def _ref(key: str, message: str, kind: str) -> str:
    """Kept per process (the key is part of the cache key): every partner decision and request log
    line names its resident or user again, and a ref costs an HMAC."""
    return f"{kind}:{hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()[:20]}"


def user_ref(user) -> str:
    """The actor ref of a Django user (or "-" for anonymous)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return "-"
    return pseudonymous_ref("user", user.pk)
