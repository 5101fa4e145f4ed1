"""Access grants: who may pass where and when (the rules that judge them are access.policy's).

Every change patches the partners' allowlists of the grant's site (access.services.allowlist).
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from access.models import AccessGrant, Building, Device, Residency, Resident
from access.services.allowlist import allowlist_resident_changed
from access.services.auditing import audit_change, clean_save


def _changed(grant: AccessGrant, actor, reason: str, pk: int | None = None, holder_id: int | None = None) -> None:
    """Audit the change and patch the allowlists of the grant's site."""
    target = grant.target_building
    audit_change(actor=actor, object_type="grant", pk=pk or grant.pk, reason=reason, company_id=target.company_id,
                 building_id=target.pk)
    allowlist_resident_changed(resident_id=holder_id or grant.holder_resident_id, building_ids={target.pk})


@transaction.atomic
def grant_create(
    *,
    resident: Resident | None = None,
    residency: Residency | None = None,
    building: Building | None = None,
    device: Device | None = None,
    valid_from=None,
    valid_until=None,
    schedule: dict | None = None,
    actor=None,
) -> AccessGrant:
    """Grant a resident (or a residency) access to a building (or one device).

    Checks: exactly one holder and one target (database constraints), dates in order, the
    weekly schedule's shape, and that the target is in the holder's management company.
    Records admin.change; patches the target site's allowlists.
    """
    holder = resident if resident is not None else (residency.resident if residency is not None else None)
    target = building if building is not None else (device.building if device is not None else None)
    if holder is not None and target is not None and holder.company_id != target.company_id:
        raise ValidationError(gettext("The target belongs to another management company than the resident."))
    grant = clean_save(
        AccessGrant(
            resident=resident, residency=residency, building=building, device=device,
            valid_from=valid_from or timezone.now(), valid_until=valid_until,
            schedule=schedule or {}, created_by=actor,
        )
    )
    _changed(grant, actor, "created")
    return grant


@transaction.atomic
def grant_update(*, grant: AccessGrant, valid_from, valid_until, schedule: dict | None, suspended: bool,
                 actor=None) -> AccessGrant:
    """Change a grant's validity, weekly schedule or suspension (the admin's form; holder and
    target never change - delete the grant and create another). Checks as grant_create.
    Records admin.change; patches the target site's allowlists."""
    grant = AccessGrant.objects.select_for_update().get(pk=grant.pk)
    grant.valid_from, grant.valid_until = valid_from, valid_until
    grant.schedule, grant.suspended = schedule or {}, suspended
    clean_save(grant)
    _changed(grant, actor, "updated")
    return grant


@transaction.atomic
def grant_suspend(*, grant: AccessGrant, actor=None) -> AccessGrant:
    """Suspend a grant (it stays, denies until resumed). Records admin.change; patches the
    target site's allowlists."""
    return _set_suspended(grant, True, actor)


@transaction.atomic
def grant_resume(*, grant: AccessGrant, actor=None) -> AccessGrant:
    """Lift a grant's suspension. Records admin.change; patches the target site's allowlists."""
    return _set_suspended(grant, False, actor)


def _set_suspended(grant: AccessGrant, suspended: bool, actor) -> AccessGrant:
    grant.suspended = suspended
    grant.save(update_fields=["suspended"])
    _changed(grant, actor, "suspended" if suspended else "resumed")
    return grant


@transaction.atomic
def grants_suspend_for_residents(*, residents, actor=None) -> int:
    """Suspend every unsuspended grant the residents hold, personally or through a residency
    (each as grant_suspend). Returns how many were suspended."""
    count = 0
    for resident in residents:
        grants = AccessGrant.objects.held_by(resident.pk).filter(suspended=False)
        for grant in grants.select_related("building", "device__building", "residency"):
            grant_suspend(grant=grant, actor=actor)
            count += 1
    return count


@transaction.atomic
def grant_delete(*, grant: AccessGrant, actor=None) -> None:
    """Delete a grant. Records admin.change; patches the target site's allowlists."""
    pk, holder_id = grant.pk, grant.holder_resident_id
    grant.delete()
    _changed(grant, actor, "deleted", pk=pk, holder_id=holder_id)
