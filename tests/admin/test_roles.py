"""The role groups exist (data migration + post_migrate) and hold exactly their permissions."""

import pytest
from django.contrib.auth.models import Group

from access.models import Device
from core.security.role_permissions import ROLE_PERMISSIONS, sync_role_groups
from core.security.roles import ALL_ROLES, COMPLIANCE_OFFICER, PROPERTY_MANAGER, SECURITY_ADMIN
from tests.admin.conftest import login_verified

pytestmark = pytest.mark.django_db


def perms_of(role: str) -> set[str]:
    group = Group.objects.get(name=role)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_every_role_is_a_group_with_permissions():
    assert set(ROLE_PERMISSIONS) == set(ALL_ROLES)
    for role in ALL_ROLES:
        assert perms_of(role), role


def test_property_manager_runs_company_objects_but_not_accounts():
    perms = perms_of(PROPERTY_MANAGER)
    for model in ("building", "unit", "resident", "residency", "device", "accessgrant", "vehicle"):
        assert {f"access.{a}_{model}" for a in ("add", "change", "delete", "view")} <= perms
    assert {"partners.add_partnercontract", "partners.view_partnercredentials",
            "partners.change_partnercredentials", "partners.view_partner"} <= perms
    assert "partners.add_partner" not in perms
    assert "partners.delete_partnercredentials" not in perms
    assert not {p for p in perms if p.startswith(("auth.", "axes.", "otp_", "auditlog."))}


def test_compliance_officer_only_reads():
    perms = perms_of(COMPLIANCE_OFFICER)
    assert {"access.view_resident", "partners.view_partnercontract", "audit.view_auditevent"} <= perms
    writes = {p for p in perms if p.split(".")[1].startswith(("add_", "change_", "delete_"))}
    assert writes == set()


def test_security_admin_handles_accounts_lockouts_and_partners_only():
    perms = perms_of(SECURITY_ADMIN)
    assert {"axes.view_accessattempt", "axes.delete_accessattempt", "auth.change_user",
            "core.delete_encryptedtotpdevice", "partners.change_partner"} <= perms
    assert not {p for p in perms if p.startswith("access.") and not p.startswith("access.view_")}
    assert "auth.delete_user" not in perms


def test_sync_restores_a_tampered_group():
    group = Group.objects.get(name=COMPLIANCE_OFFICER)
    group.permissions.clear()
    counts = sync_role_groups()
    assert counts[COMPLIANCE_OFFICER] == len(perms_of(COMPLIANCE_OFFICER)) > 0


def test_compliance_officer_can_open_but_not_save_a_device(client, world, users):
    device = world["a"][Device]
    login_verified(client, users.compliance)
    url = f"/admin/access/device/{device.pk}/change/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"name": "renamed", "kind": device.kind, "building": device.building_id,
                                 "partner": device.partner_id, "partner_device_ref": "x"})
    assert response.status_code == 403
    device.refresh_from_db()
    assert device.name != "renamed"


def test_property_manager_cannot_reach_accounts_or_lockouts(client, users):
    login_verified(client, users.manager)
    assert client.get("/admin/auth/user/").status_code == 403
    assert client.get("/admin/axes/accessattempt/").status_code == 403


def test_security_admin_cannot_make_a_superuser(client, users):
    login_verified(client, users.security)
    response = client.get(f"/admin/auth/user/{users.manager.pk}/change/")
    assert response.status_code == 200
    assert "is_superuser" not in response.context["adminform"].form.fields
