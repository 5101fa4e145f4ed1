"""What each staff role may do: the permission table behind the groups in `core.security.roles`.

Patterns are `app_label.codename` with shell wildcards. The groups are created by the data
migration `core/migrations/0001_roles.py` and re-synchronised after every `migrate`
(post_migrate, see `core/admin.py`), so models added later by any app are covered and a
group always holds exactly what this table says. Which rows a role sees is decided separately,
by company isolation (`core.portal.isolation`).
"""

from fnmatch import fnmatchcase

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import DEFAULT_DB_ALIAS

from core.security.roles import COMPLIANCE_OFFICER, PROPERTY_MANAGER, SECURITY_ADMIN

CRUD = ("add", "change", "delete", "view")
_COMPANY_OBJECTS = ("building", "unit", "resident", "residency", "device", "accessgrant", "vehicle")

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    # Runs the company's buildings day to day: residents, their cars and guest passes, remote opens
    # for couriers and visitors, consent states; sees partner organisations and credential
    # fingerprints, rotates credentials (change), never creates partners or reads secrets.
    PROPERTY_MANAGER: (
        "access.view_managementcompany",
        *(f"access.{action}_{model}" for model in _COMPANY_OBJECTS for action in CRUD),
        *(f"partners.{action}_partnercontract" for action in CRUD),
        "partners.view_partner",
        "partners.view_partnercredentials",
        "partners.change_partnercredentials",
        "access.open_device",  # remote open for a courier or a visitor (access.services.opening)
        "access.add_guestpass",
        "access.view_guestpass",
        "access.change_guestpass",  # revoke: a pass is never edited (access.admin.GuestPassAdmin)
        "consent.view_consent_status",  # consent states, never the evidence
        "audit.view_auditevent",
        "audit.export_auditevent",  # the company's own events, with the proof
        "identity.view_providerlink",
        "identity.add_providerlink",
        "identity.delete_providerlink",
        "identity.view_invitation",
    ),
    # Reads everything of the domain, exports and verifies the audit log; changes nothing.
    COMPLIANCE_OFFICER: (
        "access.view_*",
        "partners.view_partner",
        "partners.view_partnercontract",
        "partners.view_partnercredentials",
        "consent.view_*",
        "consent.export_*",
        "identity.view_providerlink",
        "identity.view_invitation",
        "audit.view_*",
        "audit.export_*",
        "audit.verify_*",
        "audit.reconcile_*",
    ),
    # Accounts, second factors (others' only through a superuser: core.security.staff_policy) and
    # lockouts; suspends partners; reads the admin audit trail.
    SECURITY_ADMIN: (
        "auth.add_user",
        "auth.change_user",
        "auth.view_user",
        "auth.view_group",
        "axes.view_*",
        "axes.delete_accessattempt",
        "core.view_encryptedtotpdevice",
        "core.delete_encryptedtotpdevice",
        "otp_static.view_staticdevice",
        "otp_static.delete_staticdevice",
        "partners.view_partner",
        "partners.change_partner",
        "access.view_securityalert",
        "auditlog.view_logentry",
        "audit.view_auditevent",
        "identity.view_*",
        "identity.delete_providerlink",
    ),
}


def permission_matches(app_label: str, codename: str, patterns) -> bool:
    key = f"{app_label}.{codename}"
    return any(fnmatchcase(key, pattern) for pattern in patterns)


def sync_role_groups(*, apps=global_apps, using: str = DEFAULT_DB_ALIAS) -> dict[str, int]:
    """Create the role groups and give each exactly the permissions of ROLE_PERMISSIONS.

    Idempotent. Returns {role: number of permissions}.
    """
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    permissions = list(permission_model.objects.using(using).select_related("content_type"))
    counts = {}
    for role, patterns in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.using(using).get_or_create(name=role)
        wanted = [p for p in permissions if permission_matches(p.content_type.app_label, p.codename, patterns)]
        group.permissions.set(wanted)
        counts[role] = len(wanted)
    return counts


def sync_after_migrate(sender, using=DEFAULT_DB_ALIAS, **kwargs):
    """post_migrate receiver: runs once, after the last app with models has its permissions."""
    last = [config for config in global_apps.get_app_configs() if config.models_module][-1]
    if sender.label == last.label:
        # This receiver may run before auth's create_permissions for the last app: create them first.
        for config in global_apps.get_app_configs():
            create_permissions(config, verbosity=0, using=using)
        sync_role_groups(using=using)
