"""What the access services share: validated saves and their admin-change audit record."""

from audit.actions import Action, Outcome
from audit.actors import actor_fields
from audit.services import record, record_many


def change_event(*, actor_fields_: dict, object_type: str, pk: int, reason: str, company_id=None,
                 building_id=None, action: Action = Action.ADMIN_CHANGE, object_ref: str | None = None) -> dict:
    """The audit record (`audit.services.record`'s arguments) of a successful change of one row
    (`object_type:pk` unless `object_ref`) by the actor `actor_fields_` names (`actor_fields`)."""
    return {
        "action": action, "outcome": Outcome.SUCCESS, "object_type": object_type,
        "object_ref": object_ref or f"{object_type}:{pk}", "company_id": company_id, "building_id": building_id,
        "reason": reason, **actor_fields_,
    }


def audit_change(*, actor, object_type: str, pk: int, reason: str, company_id=None, building_id=None,
                 action: Action = Action.ADMIN_CHANGE, object_ref: str | None = None) -> None:
    """Record a successful change of one row (`object_type:pk` unless `object_ref`) by `actor`."""
    record(**change_event(actor_fields_=actor_fields(actor), object_type=object_type, pk=pk, reason=reason,
                          company_id=company_id, building_id=building_id, action=action, object_ref=object_ref))


def audit_changes(events: list[dict]) -> None:
    """Record many `change_event`s at once (bulk writes)."""
    record_many(events)


def clean_save(obj):
    """Validate the row (fields and constraints) and save it."""
    obj.full_clean()
    obj.save()
    return obj
