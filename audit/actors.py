"""Who an audit event says acted, from the Django user a service was called with.

The one rule every app's services use: no user is the system itself; a staff account is staff
(an administrator acting in the admin, whatever the record is about); any other account is a
resident acting in the app. The ref is pseudonymous (core.security.identifiers.user_ref).
"""

from audit.actions import ActorKind
from core.security.identifiers import user_ref


def actor_fields(actor) -> dict:
    """`actor_kind` and `actor_ref` of `audit.services.record` for `actor` (a user or None)."""
    if actor is None:
        return {"actor_kind": ActorKind.SYSTEM, "actor_ref": ""}
    kind = ActorKind.STAFF if actor.is_staff else ActorKind.RESIDENT
    return {"actor_kind": kind, "actor_ref": user_ref(actor)}
