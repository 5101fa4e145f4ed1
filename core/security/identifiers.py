"""Pseudonymous references: how people appear in logs and audit events.

A ref is a keyed hash (PSEUDONYM_KEY) of a kind and a primary key: stable, so events of one
person can be correlated by someone holding the key, but meaningless on its own.
"""

import hashlib
import hmac

from django.conf import settings


def pseudonymous_ref(kind: str, pk: object) -> str:
    """`kind:` + 20 hex chars of HMAC-SHA256(PSEUDONYM_KEY, "kind:pk")."""
    digest = hmac.new(settings.PSEUDONYM_KEY.encode(), f"{kind}:{pk}".encode(), hashlib.sha256)
    return f"{kind}:{digest.hexdigest()[:20]}"


def user_ref(user) -> str:
    """The actor ref of a Django user (or "-" for anonymous)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return "-"
    return pseudonymous_ref("user", user.pk)
