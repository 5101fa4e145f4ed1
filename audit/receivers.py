"""Audit events for what other parts of the service announce with signals.

Staff accounts, role groups and second factors live in the core, which imports no domain app:
`core.security.staff_changes` announces each change and this records it, in the same
transaction, as an `admin.change` event.
"""

from django.dispatch import receiver

from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from core.security.identifiers import user_ref
from core.security.staff_changes import staff_changed


def _actor(actor) -> dict:
    if actor is None:
        return {"actor_kind": ActorKind.SYSTEM, "actor_ref": ""}
    return {"actor_kind": ActorKind.STAFF if actor.is_staff else ActorKind.RESIDENT, "actor_ref": user_ref(actor)}


@receiver(staff_changed, dispatch_uid="audit.staff_changed")
def record_staff_change(sender, *, actor, object_type, object_ref, reason, company_id=None, **kwargs):
    record(
        action=Action.ADMIN_CHANGE, outcome=Outcome.SUCCESS, object_type=object_type, object_ref=object_ref,
        reason=reason, company_id=company_id, **_actor(actor),
    )
