"""Staff accounts kept in step with the directory (LDAP / Active Directory) at every login."""

import logging

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from access.models import ManagementCompany, StaffMembership
from access.services.companies import staff_membership_create, staff_membership_delete
from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from core.security.identifiers import user_ref
from core.security.roles import ALL_ROLES
from identity.models import DirectoryAccount

logger = logging.getLogger(__name__)


def dn_key(dn: str) -> str:
    """A DN compared case-insensitively and without spaces around its separators."""
    return ",".join("=".join(part.strip() for part in rdn.split("=", 1)) for rdn in dn.lower().split(","))


def roles_for(group_dns) -> set[str]:
    """The roles of core.security.roles the directory groups `group_dns` give (IDENTITY_LDAP_ROLE_GROUPS)."""
    member_of = {dn_key(dn) for dn in group_dns}
    return {
        role for role, group_dn in settings.IDENTITY_LDAP_ROLE_GROUPS.items()
        if role in ALL_ROLES and dn_key(group_dn) in member_of
    }


def companies_for(group_dns) -> set[int]:
    """Ids of the management companies the groups give (IDENTITY_LDAP_COMPANY_GROUPS: group DN ->
    company names or ids). Names that match no company are logged and ignored."""
    member_of = {dn_key(dn) for dn in group_dns}
    names, ids = set(), set()
    for group_dn, companies in settings.IDENTITY_LDAP_COMPANY_GROUPS.items():
        if dn_key(group_dn) not in member_of:
            continue
        for company in companies if isinstance(companies, list) else [companies]:
            (ids if isinstance(company, int) else names).add(company)
    found = dict(ManagementCompany.objects.filter(name__in=names).values_list("name", "pk"))
    missing = names - set(found)
    if missing:
        logger.warning("IDENTITY_LDAP_COMPANY_GROUPS names companies that do not exist", extra={"count": len(missing)})
    ids = set(ManagementCompany.objects.filter(pk__in=ids).values_list("pk", flat=True))
    return ids | set(found.values())


@transaction.atomic
def directory_user_sync(*, user, dn: str, group_dns) -> set[str]:
    """Give the directory user `user` exactly the roles and company memberships its groups map to
    (IDENTITY_LDAP_ROLE_GROUPS, IDENTITY_LDAP_COMPANY_GROUPS), nothing more: roles it no longer
    has and memberships of companies it no longer serves are removed; without any role it is no
    longer staff (and cannot sign in). Directory users are never superusers. Records
    identity.directory_sync (reason: the number of roles). Returns the roles.
    """
    roles = roles_for(group_dns)
    company_ids = companies_for(group_dns) if roles else set()
    user.is_staff = bool(roles)
    user.is_superuser = False
    user.save(update_fields=["is_staff", "is_superuser"])
    DirectoryAccount.objects.update_or_create(user=user, defaults={"dn": dn[:512], "synced_at": timezone.now()})

    role_groups = {group.name: group for group in Group.objects.filter(name__in=ALL_ROLES)}
    held = set(user.groups.filter(name__in=ALL_ROLES).values_list("name", flat=True))
    user.groups.remove(*(role_groups[name] for name in held - roles if name in role_groups))
    user.groups.add(*(role_groups[name] for name in roles - held if name in role_groups))

    memberships = {m.company_id: m for m in StaffMembership.objects.filter(user=user)}
    for company_id, membership in memberships.items():
        if company_id not in company_ids:
            staff_membership_delete(membership=membership)
    for company in ManagementCompany.objects.filter(pk__in=company_ids - set(memberships)):
        staff_membership_create(user=user, company=company)

    record(
        action=Action.IDENTITY_DIRECTORY_SYNC,
        outcome=Outcome.SUCCESS if roles else Outcome.DENIED,
        actor_kind=ActorKind.SYSTEM,
        object_type="user",
        object_ref=user_ref(user),
        reason=f"roles.{len(roles)}.companies.{len(company_ids)}",
    )
    return roles
