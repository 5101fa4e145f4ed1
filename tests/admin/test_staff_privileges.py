"""Staff privileges in the admin: nobody takes over a superuser, raises their own roles or handles
another staff member's second factors, and every such change is an audit event.

Rules (core.security.staff_policy): only a superuser changes a superuser (any field, password,
devices, memberships, deletion); nobody changes their own roles, staff flags, permissions or
company memberships unless superuser; nobody but a superuser changes another staff member's
OTP devices (TOTP and backup codes). Each refused path answers with its exact status and leaves
the database as it was; each allowed one records `admin.change` with pseudonymous refs.
"""

import pytest
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import Group, Permission, User
from django.forms import CheckboxInput, MultiWidget, SelectMultiple
from django.urls import reverse
from django_otp import devices_for_user
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

from access.models import ManagementCompany, StaffMembership
from audit.models import AuditEvent
from core.security.identifiers import user_ref
from core.security.roles import ALL_ROLES, PROPERTY_MANAGER, SECURITY_ADMIN
from tests.admin.conftest import PASSWORD, backup_device, login_verified, staff_user, totp_device

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-new-password-nobody-knows-9"


# --- helpers ------------------------------------------------------------------------------------


def form_data(response) -> dict:
    """What a browser submits for the admin form on `response`, unchanged."""
    form = response.context["adminform"].form
    data = {}
    for bound in form:
        if bound.field.disabled:
            continue
        value, widget = bound.value(), bound.field.widget
        widget = getattr(widget, "widget", widget)  # the admin's RelatedFieldWidgetWrapper
        if isinstance(widget, MultiWidget):
            parts = widget.decompress(value) if not isinstance(value, list) else value
            for index, part in enumerate(parts):
                data[f"{bound.html_name}_{index}"] = "" if part is None else str(part)
        elif isinstance(widget, SelectMultiple):
            data[bound.html_name] = [str(v) for v in value or []]
        elif isinstance(widget, CheckboxInput):
            if value:
                data[bound.html_name] = "on"
        else:
            data[bound.html_name] = "" if value is None else str(value)
    return data


def admin_url(obj, view: str) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk])


def changelist_url(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def account(user) -> dict:
    """Everything about a user account a takeover would change."""
    user = User.objects.get(pk=user.pk)
    return {
        "password": user.password,
        "fields": (user.username, user.first_name, user.last_name, user.email, user.is_active, user.is_staff,
                   user.is_superuser),
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "permissions": user.user_permissions.count(),
        "memberships": sorted(StaffMembership.objects.filter(user=user).values_list("company_id", flat=True)),
        "devices": sorted(device.persistent_id for device in devices_for_user(user, confirmed=None)),
        "backup_codes": sorted(str(t) for t in _static_tokens(user)),
    }


def totp_device_of(user):
    for device in devices_for_user(user, confirmed=None):
        if device.name == "default":
            return device
    return None


def _static_tokens(user):
    return StaticToken.objects.filter(device__user=user).values_list("token", flat=True)


def staff_events(**filters):
    return AuditEvent.objects.filter(action="admin.change", **filters)


def assert_no_staff_events():
    assert not staff_events(object_type__in=("staff_user", "otp_device", "group", "staff_membership")).exclude(
        reason="created", object_type="staff_membership").exists()


@pytest.fixture
def victims(users):
    """The superuser, the property manager, the security admin and the all-permissions user, each
    with a TOTP device and backup codes."""
    for user in (users.root, users.manager, users.security, users.scoped):
        totp_device(user)
        backup_device(user)
    return users


# --- the superuser is changed by superusers only --------------------------------------------------


def test_security_admin_cannot_change_a_superusers_password(client, victims):
    before = account(victims.root)
    login_verified(client, victims.security)
    url = reverse("admin:auth_user_password_change", args=[victims.root.pk])
    response = client.post(url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"})
    assert response.status_code == 403
    assert account(victims.root) == before
    assert not check_password(NEW_PASSWORD, User.objects.get(pk=victims.root.pk).password)
    assert_no_staff_events()


def test_security_admin_cannot_change_a_superusers_account(client, victims):
    before = account(victims.root)
    login_verified(client, victims.security)
    page = client.get(admin_url(victims.root, "change"))
    assert page.status_code == 200  # view only
    data = form_data(page)
    data.update({"first_name": "Hijacked", "email": "attacker@example.org", "is_active": ""})
    response = client.post(admin_url(victims.root, "change"), data)
    assert response.status_code == 403
    assert account(victims.root) == before
    assert_no_staff_events()


def test_nobody_but_a_superuser_deletes_a_superuser(client, victims):
    before = account(victims.root)
    login_verified(client, victims.scoped)  # holds auth.delete_user, is no superuser
    response = client.post(admin_url(victims.root, "delete"), {"post": "yes"})
    assert response.status_code == 403
    bulk = client.post(changelist_url(User), {"action": "delete_selected", "_selected_action": [victims.root.pk],
                                               "post": "yes"})
    assert bulk.status_code == 403
    assert account(victims.root) == before
    assert_no_staff_events()


def test_security_admin_cannot_delete_users_at_all(client, victims):
    login_verified(client, victims.security)
    response = client.post(admin_url(victims.manager, "delete"), {"post": "yes"})
    assert response.status_code == 403
    assert User.objects.filter(pk=victims.manager.pk).exists()


def test_a_superuser_deletes_a_staff_account_and_it_is_audited(client, victims):
    login_verified(client, victims.root)
    target_ref = user_ref(victims.manager)
    response = client.post(admin_url(victims.manager, "delete"), {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(pk=victims.manager.pk).exists()
    event = staff_events(object_type="staff_user", reason="deleted").get()
    assert (event.actor_ref, event.object_ref, event.actor_kind) == (user_ref(victims.root), target_ref, "staff")


# --- nobody raises their own privileges -----------------------------------------------------------


@pytest.mark.parametrize("who", ["security", "scoped"])
def test_nobody_changes_their_own_roles_flags_or_permissions(client, victims, who):
    actor = getattr(victims, who)
    before = account(actor)
    login_verified(client, actor)
    page = client.get(admin_url(actor, "change"))
    assert page.status_code == 200
    for name in ("groups", "is_staff", "is_active", "is_superuser", "user_permissions"):
        assert name not in page.context["adminform"].form.fields, name
    data = form_data(page)
    data.update({
        "groups": [str(g.pk) for g in Group.objects.all()],
        "is_superuser": "on", "is_staff": "on", "is_active": "on",
        "user_permissions": [str(p.pk) for p in Permission.objects.all()[:50]],
    })
    response = client.post(admin_url(actor, "change"), data)
    assert response.status_code == 302  # the editable fields (name, e-mail) were saved; privileges ignored
    assert account(actor) == before
    assert not staff_events(reason__in=("roles_changed", "permissions_changed", "superuser_status_changed")).exists()


def test_security_admin_assigns_roles_to_others_and_it_is_audited(client, victims):
    login_verified(client, victims.security)
    page = client.get(admin_url(victims.manager, "change"))
    form = page.context["adminform"].form
    assert "groups" in form.fields
    assert "is_superuser" not in form.fields
    assert "user_permissions" not in form.fields
    data = form_data(page)
    security_group = Group.objects.get(name=SECURITY_ADMIN)
    data["groups"] = [*data["groups"], str(security_group.pk)]
    data["is_superuser"] = "on"  # not a field for a security admin: ignored
    response = client.post(admin_url(victims.manager, "change"), data)
    assert response.status_code == 302
    manager = User.objects.get(pk=victims.manager.pk)
    assert sorted(manager.groups.values_list("name", flat=True)) == sorted([PROPERTY_MANAGER, SECURITY_ADMIN])
    assert not manager.is_superuser
    event = staff_events(object_type="staff_user", reason="roles_changed").get()
    assert (event.actor_ref, event.object_ref, event.outcome) == (
        user_ref(victims.security), user_ref(victims.manager), "success")
    assert "manager" not in f"{event.actor_ref} {event.object_ref} {event.reason}"


def test_a_password_set_by_the_security_admin_is_audited(client, victims):
    login_verified(client, victims.security)
    url = reverse("admin:auth_user_password_change", args=[victims.manager.pk])
    response = client.post(url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"})
    assert response.status_code == 302
    assert User.objects.get(pk=victims.manager.pk).check_password(NEW_PASSWORD)
    event = staff_events(object_type="staff_user", reason="password_set").get()
    assert (event.actor_ref, event.object_ref) == (user_ref(victims.security), user_ref(victims.manager))


def test_ones_own_password_change_is_audited(client, victims):
    login_verified(client, victims.security)
    response = client.post(reverse("admin:password_change"), {
        "old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert User.objects.get(pk=victims.security.pk).check_password(NEW_PASSWORD)
    event = staff_events(object_type="staff_user", reason="password_set").get()
    assert (event.actor_ref, event.object_ref) == (user_ref(victims.security), user_ref(victims.security))


# --- OTP devices: only a superuser handles another staff member's second factors --------------------


def _devices(user):
    return totp_device_of(user), StaticDevice.objects.get(user=user)


@pytest.mark.parametrize("kind", ["totp", "static"])
@pytest.mark.parametrize("target", ["root", "manager"])
@pytest.mark.parametrize("who", ["security", "scoped"])
def test_nobody_but_a_superuser_deletes_anothers_otp_device(client, victims, kind, target, who):
    owner = getattr(victims, target)
    device = _devices(owner)[kind == "static"]
    before = account(owner)
    login_verified(client, getattr(victims, who))
    response = client.post(admin_url(device, "delete"), {"post": "yes"})
    assert response.status_code == 403
    bulk = client.post(changelist_url(type(device)), {"action": "delete_selected", "_selected_action": [device.pk],
                                                      "post": "yes"})
    assert bulk.status_code == 403
    assert account(owner) == before
    assert_no_staff_events()


@pytest.mark.parametrize("kind", ["totp", "static"])
def test_nobody_but_a_superuser_changes_anothers_otp_device(client, victims, kind):
    device = _devices(victims.root)[kind == "static"]
    before = account(victims.root)
    login_verified(client, victims.scoped)  # holds change permissions on every model
    page = client.get(admin_url(device, "change"))
    assert page.status_code == 200  # view only
    response = client.post(admin_url(device, "change"), {"name": "renamed", "user": victims.scoped.pk})
    assert response.status_code == 403
    assert account(victims.root) == before
    assert type(device)._default_manager.get(pk=device.pk).name == device.name
    assert_no_staff_events()


@pytest.mark.parametrize("kind", ["totp", "static"])
def test_a_superuser_removes_a_lost_device_and_it_is_audited(client, victims, kind):
    device = _devices(victims.manager)[kind == "static"]
    login_verified(client, victims.root)
    response = client.post(admin_url(device, "delete"), {"post": "yes"})
    assert response.status_code == 302
    assert not type(device)._default_manager.filter(pk=device.pk).exists()
    event = staff_events(object_type="otp_device", reason="deleted").get()
    assert (event.actor_ref, event.object_ref) == (user_ref(victims.root), user_ref(victims.manager))


def test_device_pages_never_show_a_secret(client, victims):
    totp, static = _devices(victims.manager)
    login_verified(client, victims.root)
    for url in (admin_url(totp, "change"), admin_url(static, "change"), changelist_url(type(totp)),
                changelist_url(type(static))):
        page = client.get(url)
        assert page.status_code == 200, url
        text = page.content.decode()
        assert "otpauth://" not in text
        assert "qrcode" not in text.lower()
        for code in ("alpha234", "bravo567"):
            assert code not in text
    assert client.get(f"/admin/otp_totp/totpdevice/{totp.pk}/config/").status_code == 404


# --- role groups ----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["security", "scoped"])
def test_only_a_superuser_edits_group_permissions(client, victims, who):
    group = Group.objects.get(name=PROPERTY_MANAGER)
    before = sorted(group.permissions.values_list("pk", flat=True))
    login_verified(client, getattr(victims, who))
    response = client.post(admin_url(group, "change"),
                           {"name": group.name, "permissions": [str(p.pk) for p in Permission.objects.all()]})
    assert response.status_code == 403
    assert sorted(Group.objects.get(pk=group.pk).permissions.values_list("pk", flat=True)) == before
    assert_no_staff_events()


def test_role_groups_are_defined_in_code_even_for_a_superuser(client, victims):
    group = Group.objects.get(name=PROPERTY_MANAGER)
    before = sorted(group.permissions.values_list("pk", flat=True))
    login_verified(client, victims.root)
    page = client.get(admin_url(group, "change"))
    assert page.status_code == 200
    assert "permissions" not in page.context["adminform"].form.fields
    assert client.post(admin_url(group, "delete"), {"post": "yes"}).status_code == 403
    assert sorted(Group.objects.get(pk=group.pk).permissions.values_list("pk", flat=True)) == before
    assert set(Group.objects.filter(name__in=ALL_ROLES).values_list("name", flat=True)) == set(ALL_ROLES)


def test_a_superuser_changes_another_groups_permissions_and_it_is_audited(client, victims):
    group = Group.objects.create(name="night shift")
    permission = Permission.objects.get(codename="view_building")
    login_verified(client, victims.root)
    response = client.post(admin_url(group, "change"), {"name": group.name, "permissions": [str(permission.pk)]})
    assert response.status_code == 302
    assert list(group.permissions.all()) == [permission]
    event = staff_events(object_type="group", reason="permissions_changed").get()
    assert (event.actor_ref, event.object_ref) == (user_ref(victims.root), f"group:{group.pk}")


# --- company memberships --------------------------------------------------------------------------


def test_security_admin_assigns_no_companies(client, world, victims):
    company_b = world["b"][ManagementCompany]
    login_verified(client, victims.security)
    for user in (victims.security, victims.compliance):
        response = client.post(reverse("admin:access_staffmembership_add"), {"user": user.pk, "company": company_b.pk})
        assert response.status_code == 403
    assert not StaffMembership.objects.filter(company=company_b, user__in=[victims.security, victims.compliance])


def test_nobody_adds_themselves_to_a_company(client, world, victims):
    company_a, company_b = world["a"][ManagementCompany], world["b"][ManagementCompany]
    before = account(victims.scoped)
    login_verified(client, victims.scoped)  # every permission, company A only
    foreign = client.post(reverse("admin:access_staffmembership_add"),
                          {"user": victims.scoped.pk, "company": company_b.pk})
    assert foreign.status_code == 200  # the form again: company B is outside the caller's scope
    assert "company" in foreign.context["adminform"].form.errors
    own = client.post(reverse("admin:access_staffmembership_add"), {"user": victims.scoped.pk, "company": company_a.pk})
    assert own.status_code == 403  # the policy: nobody adds themselves
    assert account(victims.scoped) == before
    own = StaffMembership.objects.get(user=victims.scoped)
    assert client.post(admin_url(own, "delete"), {"post": "yes"}).status_code == 403
    assert StaffMembership.objects.filter(pk=own.pk).exists()
    assert_no_staff_events()


def test_memberships_of_others_stay_inside_the_callers_companies(client, world, victims):
    company_a, company_b = world["a"][ManagementCompany], world["b"][ManagementCompany]
    newcomer = staff_user("newcomer")
    login_verified(client, victims.scoped)
    foreign = client.post(reverse("admin:access_staffmembership_add"), {"user": newcomer.pk, "company": company_b.pk})
    assert foreign.status_code == 200  # the form again: company B is not a choice
    assert "company" in foreign.context["adminform"].form.errors
    assert not StaffMembership.objects.filter(user=newcomer).exists()
    response = client.post(reverse("admin:access_staffmembership_add"), {"user": newcomer.pk, "company": company_a.pk})
    assert response.status_code == 302
    membership = StaffMembership.objects.get(user=newcomer)
    assert membership.company == company_a
    created = staff_events(object_type="staff_membership", reason="created",
                           object_ref=f"staff_membership:{membership.pk}").get()
    assert created.actor_ref == user_ref(victims.scoped)
    assert client.post(admin_url(membership, "delete"), {"post": "yes"}).status_code == 302
    assert not StaffMembership.objects.filter(user=newcomer).exists()
    deleted = staff_events(object_type="staff_membership", reason="deleted").get()
    assert (deleted.actor_ref, deleted.company_id) == (user_ref(victims.scoped), company_a.pk)


def test_a_membership_cannot_be_moved_to_another_user(client, world, victims):
    membership = StaffMembership.objects.get(user=victims.manager)
    login_verified(client, victims.scoped)
    response = client.post(admin_url(membership, "change"), {"user": victims.scoped.pk,
                                                             "company": membership.company_id})
    assert response.status_code == 403
    assert StaffMembership.objects.get(pk=membership.pk).user_id == victims.manager.pk


def test_a_superuser_may_join_a_company(client, world, victims):
    company_b = world["b"][ManagementCompany]
    login_verified(client, victims.root)
    response = client.post(reverse("admin:access_staffmembership_add"), {"user": victims.root.pk,
                                                                         "company": company_b.pk})
    assert response.status_code == 302
    assert StaffMembership.objects.filter(user=victims.root, company=company_b).exists()
