"""What the access services share: validated saves and their admin-change audit record."""

from audit.actions import Action, Outcome
from audit.actors import actor_fields
from audit.services import record


def audit_change(*, actor, object_type: str, pk: int, reason: str, company_id=None, building_id=None,
                 action: Action = Action.ADMIN_CHANGE, object_ref: str | None = None) -> None:
    """Record a successful change of one row (`object_type:pk` unless `object_ref`) by `actor`."""
    record(
        action=action,
        outcome=Outcome.SUCCESS,
        object_type=object_type,
        object_ref=object_ref or f"{object_type}:{pk}",
        company_id=company_id,
        building_id=building_id,
        reason=reason,
        **actor_fields(actor),
    )


def clean_save(obj):
    """Validate the row (fields and constraints) and save it."""
    obj.full_clean()
    obj.save()
    return obj
