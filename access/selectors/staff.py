"""Which management companies a staff user works for."""

from access.models import StaffMembership


def company_ids_for_user(user) -> set[int]:
    """Management companies a staff user belongs to (through StaffMembership).

    This is the COMPANY_RESOLVER behind core.security.tenancy.company_ids_for_user, which adds the
    superuser rule; call that one, not this, when scoping.
    """
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return set()
    return set(StaffMembership.objects.filter(user=user).values_list("company_id", flat=True))
