"""Management companies, their staff, buildings and flats."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext

from access.models import Building, ManagementCompany, StaffMembership, Unit
from access.services.allowlist import allowlist_push_site
from access.services.auditing import audit_change, clean_save
from core.security.staff_policy import StaffChange, check_change


@transaction.atomic
def company_create(*, name: str, actor=None) -> ManagementCompany:
    """Create a management company. Records admin.change."""
    company = clean_save(ManagementCompany(name=name))
    audit_change(actor=actor, object_type="company", pk=company.pk, reason="created", company_id=company.pk)
    return company


@transaction.atomic
def company_update(*, company: ManagementCompany, name: str, actor=None) -> ManagementCompany:
    """Rename a management company. Records admin.change."""
    company.name = name
    clean_save(company)
    audit_change(actor=actor, object_type="company", pk=company.pk, reason="updated", company_id=company.pk)
    return company


@transaction.atomic
def staff_membership_create(*, user, company: ManagementCompany, actor=None) -> StaffMembership:
    """Let a staff user work for `company` (the admin then shows its rows). Checks: the staff
    policy (nobody adds themselves; superusers' memberships by superusers), the user is staff.
    Records admin.change."""
    check_change(actor=actor, target=user, change=StaffChange.MEMBERSHIP)
    if not user.is_staff:
        raise ValidationError({"user": gettext("Only staff users can belong to a management company.")})
    membership = clean_save(StaffMembership(user=user, company=company))
    audit_change(actor=actor, object_type="staff_membership", pk=membership.pk, reason="created",
                 company_id=company.pk)
    return membership


@transaction.atomic
def staff_membership_delete(*, membership: StaffMembership, actor=None) -> None:
    """Take a staff user off a company. Checks: the staff policy (nobody removes themselves).
    Records admin.change."""
    check_change(actor=actor, target=membership.user, change=StaffChange.MEMBERSHIP)
    audit_change(actor=actor, object_type="staff_membership", pk=membership.pk, reason="deleted",
                 company_id=membership.company_id)
    membership.delete()


@transaction.atomic
def building_create(
    *, company: ManagementCompany, name: str, address: str, timezone: str = "Europe/Moscow", actor=None
) -> Building:
    """Create a building of `company`. Checks: IANA time zone, unique name. Records admin.change."""
    building = clean_save(Building(company=company, name=name, address=address, timezone=timezone))
    audit_change(actor=actor, object_type="building", pk=building.pk, reason="created",
                 company_id=company.pk, building_id=building.pk)
    return building


@transaction.atomic
def building_update(*, building: Building, name: str, address: str, timezone: str, actor=None) -> Building:
    """Change a building's name, address or time zone (its company never changes). Checks as
    building_create. Records admin.change; a new time zone moves every weekly schedule of the
    building's grants, so the partners' allowlists of the building are pushed in full."""
    building = Building.objects.select_for_update().get(pk=building.pk)
    moved = building.timezone != timezone
    building.name, building.address, building.timezone = name, address, timezone
    clean_save(building)
    audit_change(actor=actor, object_type="building", pk=building.pk, reason="updated",
                 company_id=building.company_id, building_id=building.pk)
    if moved:
        allowlist_push_site(building_id=building.pk)
    return building


@transaction.atomic
def unit_create(*, building: Building, number: str, actor=None) -> Unit:
    """Create a flat in `building`. Checks: number unique in the building. Records admin.change."""
    unit = clean_save(Unit(building=building, number=number))
    audit_change(actor=actor, object_type="unit", pk=unit.pk, reason="created",
                 company_id=building.company_id, building_id=building.pk)
    return unit


@transaction.atomic
def unit_update(*, unit: Unit, number: str, actor=None) -> Unit:
    """Renumber a flat (it never moves to another building). Records admin.change."""
    unit.number = number
    clean_save(unit)
    audit_change(actor=actor, object_type="unit", pk=unit.pk, reason="updated",
                 company_id=unit.building.company_id, building_id=unit.building_id)
    return unit
