"""Staff roles: Django groups created by a data migration (see docs/portal.md, "Roles")."""

PROPERTY_MANAGER = "property manager"
COMPLIANCE_OFFICER = "compliance officer"
SECURITY_ADMIN = "security admin"

ALL_ROLES = (PROPERTY_MANAGER, COMPLIANCE_OFFICER, SECURITY_ADMIN)


def has_role(user, role: str) -> bool:
    """True for an active user in the role's group (superusers only hold roles they are given)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.groups.filter(name=role).exists()
