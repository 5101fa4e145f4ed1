"""Changes to staff accounts, role groups and second factors: checked, then announced for the audit log.

Every change is checked against `core.security.staff_policy` and announced with the
`staff_changed` signal inside the transaction that makes it; the audit app records each
announcement as an `admin.change` event (pseudonymous refs only), so a refused or failed
change leaves neither the change nor the event. The core imports no domain app, hence the
signal.

The Django admin writes accounts with its own views (change form, password form); they run
inside `account_change` or `group_change`, which compare the row before and after, refuse
what the policy forbids (rolling the whole request back) and announce what changed.
"""

import contextlib
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.dispatch import Signal
from django.utils.translation import gettext

from core.security.identifiers import user_ref
from core.security.roles import ALL_ROLES
from core.security.staff_policy import StaffChange, StaffChangeRefused, check_change

# Sent with: actor (user or None for the system), object_type ("staff_user", "otp_device",
# "group", "staff_membership"), object_ref (pseudonymous), reason (a code), company_id.
staff_changed = Signal()


def announce(*, actor, object_type: str, object_ref: str, reason: str, company_id: int | None = None) -> None:
    """Tell the audit log about one change (call it inside the change's transaction)."""
    staff_changed.send(
        sender=announce, actor=actor, object_type=object_type, object_ref=object_ref, reason=reason,
        company_id=company_id,
    )


def announce_account(*, actor, user, reason: str) -> None:
    announce(actor=actor, object_type="staff_user", object_ref=user_ref(user), reason=reason)


# --- accounts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountState:
    """What of an account the policy cares about, read from the database."""

    user: object
    password: str
    profile: tuple
    is_staff: bool
    is_active: bool
    is_superuser: bool
    groups: frozenset
    permissions: frozenset

    @classmethod
    def of(cls, user_id) -> "AccountState | None":
        user = get_user_model()._default_manager.filter(pk=user_id).first()
        if user is None:
            return None
        return cls(
            user=user,
            password=user.password,
            profile=(user.get_username(), user.first_name, user.last_name, user.email),
            is_staff=user.is_staff,
            is_active=user.is_active,
            is_superuser=user.is_superuser,
            groups=frozenset(user.groups.values_list("pk", flat=True)),
            permissions=frozenset(user.user_permissions.values_list("pk", flat=True)),
        )


# (attribute of AccountState, kind of change, audit reason)
_TRACKED = (
    ("profile", StaffChange.PROFILE, "profile_changed"),
    ("password", StaffChange.PASSWORD, "password_set"),
    ("is_staff", StaffChange.STATUS, "staff_status_changed"),
    ("is_active", StaffChange.STATUS, "active_status_changed"),
    ("is_superuser", StaffChange.SUPERUSER, "superuser_status_changed"),
    ("groups", StaffChange.ROLES, "roles_changed"),
    ("permissions", StaffChange.PERMISSIONS, "permissions_changed"),
)


def account_changes(before: AccountState, after: AccountState) -> list[tuple[StaffChange, str]]:
    """(kind of change, audit reason) for each thing that differs between two states."""
    return [(kind, reason) for name, kind, reason in _TRACKED if getattr(before, name) != getattr(after, name)]


@contextlib.contextmanager
def account_change(*, actor, user_id):
    """Run a write to one account (e.g. an admin view) under the policy, in one transaction.

    Afterwards every difference is checked against the account as it was and as it is now (so
    making someone a superuser counts as changing a superuser); a forbidden one raises
    StaffChangeRefused and rolls everything back, the others are announced.
    """
    with transaction.atomic():
        before = AccountState.of(user_id)
        yield
        after = AccountState.of(user_id)
        if before is None or after is None:
            return
        for change, reason in account_changes(before, after):
            check_change(actor=actor, target=before.user, change=change)
            check_change(actor=actor, target=after.user, change=change)
            announce_account(actor=actor, user=after.user, reason=reason)


@transaction.atomic
def staff_user_delete(*, actor, user) -> None:
    """Delete an account. Checks: the policy (no self-deletion, superusers by superusers).
    Records staff_user/deleted."""
    check_change(actor=actor, target=user, change=StaffChange.DELETION)
    announce_account(actor=actor, user=user, reason="deleted")
    user.delete()


# --- groups -------------------------------------------------------------------------------------


def is_role_group(group) -> bool:
    """Role groups are defined in code (core.security.role_permissions) and re-synced after migrate."""
    return group is not None and group.name in ALL_ROLES


def _group_state(group_id):
    group = Group.objects.filter(pk=group_id).first()
    if group is None:
        return None
    return group.name, frozenset(group.permissions.values_list("pk", flat=True))


@contextlib.contextmanager
def group_change(*, actor, group_id):
    """Run a write to one group under the policy (superusers only), announcing what changed."""
    with transaction.atomic():
        before = _group_state(group_id)
        yield
        after = _group_state(group_id)
        if before is None or after is None:
            return
        reasons = [reason for changed, reason in ((before[0] != after[0], "renamed"),
                                                  (before[1] != after[1], "permissions_changed")) if changed]
        for reason in reasons:
            check_change(actor=actor, target=None, change=StaffChange.PERMISSIONS)
            announce(actor=actor, object_type="group", object_ref=f"group:{group_id}", reason=reason)


@transaction.atomic
def group_delete(*, actor, group) -> None:
    """Delete a group that is no role. Checks: superusers only; role groups stay. Records group/deleted."""
    check_change(actor=actor, target=None, change=StaffChange.PERMISSIONS)
    if is_role_group(group):
        raise StaffChangeRefused(gettext("Role groups are defined in code and cannot be deleted."))
    announce(actor=actor, object_type="group", object_ref=f"group:{group.pk}", reason="deleted")
    group.delete()
