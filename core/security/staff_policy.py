"""Who may change a staff account, its roles, company memberships and second factors.

One rule for every path that changes an account (the user, group and device admins, the company
membership service, the two-factor pages):

- only a superuser changes a superuser: any field, the password, second factors, memberships,
  deletion (and only a superuser makes someone a superuser or grants single permissions);
- nobody changes their own roles (groups), staff or active status, company memberships, or
  deletes themselves, unless superuser;
- nobody but a superuser changes another staff member's second factors (TOTP devices, backup
  codes); one's own are managed on the two-factor pages.

`actor=None` is the system (migrations, `seed_demo`, tasks): no request, nothing to refuse.
"""

import enum

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext


class StaffChange(enum.StrEnum):
    PROFILE = "profile"  # username, names, e-mail
    PASSWORD = "password"  # noqa: S105 - the kind of change, not a password
    ROLES = "roles"  # groups
    STATUS = "status"  # is_staff, is_active
    SUPERUSER = "superuser"  # is_superuser
    PERMISSIONS = "permissions"  # a user's own permissions, a group's permissions
    MEMBERSHIP = "membership"  # management companies (access.StaffMembership)
    SECOND_FACTOR = "second_factor"  # TOTP devices, backup codes
    DELETION = "deletion"


_OWN_FORBIDDEN = frozenset({StaffChange.ROLES, StaffChange.STATUS, StaffChange.MEMBERSHIP, StaffChange.DELETION})
_SUPERUSER_ONLY = frozenset({StaffChange.SUPERUSER, StaffChange.PERMISSIONS})


class StaffChangeRefused(PermissionDenied):
    """The policy forbids this change (the admin answers 403)."""


def refusal(*, actor, target, change: StaffChange) -> str | None:
    """Why `actor` may not make `change` to `target`'s account, or None when it may.

    `target` is the user whose account changes (None for a change that is nobody's, such as a
    group's permissions).
    """
    if actor is None:
        return None
    if not (actor.is_authenticated and actor.is_active):
        return gettext("Only a signed-in staff member changes accounts.")
    if actor.is_superuser:
        return None
    if target is not None and target.is_superuser:
        return gettext("Only a superuser changes a superuser.")
    if change in _SUPERUSER_ONLY:
        return gettext("Only a superuser grants superuser status or permissions outside the roles.")
    own = target is not None and target.pk == actor.pk
    if own and change in _OWN_FORBIDDEN:
        return gettext("Nobody changes their own roles, status or company memberships.")
    if change is StaffChange.SECOND_FACTOR and not own:
        return gettext("Only a superuser changes another staff member's second factors.")
    return None


def may_change(*, actor, target, change: StaffChange) -> bool:
    return refusal(actor=actor, target=target, change=change) is None


def check_change(*, actor, target, change: StaffChange) -> None:
    """Raise StaffChangeRefused (a PermissionDenied) when the policy forbids the change."""
    reason = refusal(actor=actor, target=target, change=change)
    if reason is not None:
        raise StaffChangeRefused(reason)
