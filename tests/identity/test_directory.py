"""Staff sign in with a real directory (slapd): groups map to roles and company memberships at every
login; a user removed from the group loses access at the next login; a wrong password is refused
and counts toward the lockout; the admin's one-time code is still required; local break-glass
accounts are never taken over."""

import uuid

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User

from access.models import StaffMembership
from audit.actions import Action, Outcome
from audit.models import AuditEvent
from core.security.roles import COMPLIANCE_OFFICER, PROPERTY_MANAGER, SECURITY_ADMIN
from identity.models import DirectoryAccount
from tests.admin.test_two_factor import password_step
from tests.identity.ldap_fixtures import ADMIN_DN, ADMIN_PASSWORD, GROUPS, PEOPLE

pytestmark = pytest.mark.django_db

PASSWORD = "directory password 2026"


@pytest.fixture
def directory(slapd, settings, company):
    """Users and groups of one test (unique names: the directory lives for the whole session) and
    our settings pointing at them, as production points at Active Directory."""
    tag = uuid.uuid4().hex[:8]
    users = {name: slapd.add_user(f"{name}.{tag}", PASSWORD) for name in ("pm", "co", "sec", "outsider")}
    groups = {
        "managers": slapd.add_group(f"managers-{tag}", [users["pm"]]),
        "compliance": slapd.add_group(f"compliance-{tag}", [users["co"]]),
        "security": slapd.add_group(f"security-{tag}", [users["sec"]]),
        "north": slapd.add_group(f"company-north-{tag}", [users["pm"], users["co"]]),
    }
    settings.IDENTITY_LDAP_URI = slapd.uri
    settings.IDENTITY_LDAP_BIND_DN = ADMIN_DN
    settings.IDENTITY_LDAP_BIND_PASSWORD = ADMIN_PASSWORD
    settings.IDENTITY_LDAP_USER_BASE = PEOPLE
    settings.IDENTITY_LDAP_USER_FILTER = "(uid=%(user)s)"
    settings.IDENTITY_LDAP_GROUP_BASE = GROUPS
    settings.IDENTITY_LDAP_GROUP_TYPE = "group_of_names"
    settings.IDENTITY_LDAP_ROLE_GROUPS = {
        PROPERTY_MANAGER: groups["managers"].upper(),  # DNs compare case-insensitively
        COMPLIANCE_OFFICER: groups["compliance"],
        SECURITY_ADMIN: groups["security"],
    }
    settings.IDENTITY_LDAP_COMPANY_GROUPS = {groups["north"]: [company.name]}
    settings.AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "identity.directory.DirectoryBackend",
        "django.contrib.auth.backends.ModelBackend",
        "identity.backends.ResidentContactBackend",
    ]
    return {"tag": tag, "users": users, "groups": groups, "slapd": slapd}


def login_name(directory, name):
    return f"{name}.{directory['tag']}"


def test_directory_login_maps_groups_to_roles_and_companies(client, directory, company):
    response = password_step(client, login_name(directory, "pm"), PASSWORD)

    assert response.status_code == 302  # no device yet: on to enrolment, the one-time code stays required
    user = User.objects.get(username=login_name(directory, "pm"))
    assert user.is_staff
    assert not user.is_superuser
    assert not user.has_usable_password()  # the directory holds the password
    assert set(user.groups.values_list("name", flat=True)) == {PROPERTY_MANAGER}
    assert list(StaffMembership.objects.filter(user=user).values_list("company_id", flat=True)) == [company.pk]
    assert DirectoryAccount.objects.get(user=user).dn == directory["users"]["pm"]
    assert client.get("/admin/").status_code == 302  # not verified with a second factor: no admin yet
    assert AuditEvent.objects.get(action=Action.AUTH_LOGIN, outcome=Outcome.SUCCESS).reason == "ldap"
    sync = AuditEvent.objects.get(action=Action.IDENTITY_DIRECTORY_SYNC)
    assert (sync.outcome, sync.reason) == (Outcome.SUCCESS, "roles.1.companies.1")

    security = password_step(client.__class__(), login_name(directory, "sec"), PASSWORD)
    assert security.status_code == 302
    sec_user = User.objects.get(username=login_name(directory, "sec"))
    assert set(sec_user.groups.values_list("name", flat=True)) == {SECURITY_ADMIN}
    assert not StaffMembership.objects.filter(user=sec_user).exists()


def test_a_user_removed_from_the_group_loses_access_at_the_next_login(client, directory):
    assert password_step(client, login_name(directory, "co"), PASSWORD).status_code == 302
    user = User.objects.get(username=login_name(directory, "co"))
    assert user.groups.filter(name=COMPLIANCE_OFFICER).exists()

    directory["slapd"].remove_member(directory["groups"]["compliance"], directory["users"]["co"])
    client.logout()
    again = password_step(client, login_name(directory, "co"), PASSWORD)

    assert again.status_code == 200  # the login form again, with an error
    assert "_auth_user_id" not in client.session
    user.refresh_from_db()
    assert not user.is_staff
    assert not user.groups.exists()
    assert not StaffMembership.objects.filter(user=user).exists()
    refused = AuditEvent.objects.get(action=Action.AUTH_LOGIN, outcome=Outcome.DENIED)
    assert refused.reason == "ldap.no_role"


def test_a_user_in_no_mapped_group_never_becomes_staff(client, directory):
    response = password_step(client, login_name(directory, "outsider"), PASSWORD)
    assert response.status_code == 200
    assert not User.objects.filter(username=login_name(directory, "outsider"), is_staff=True).exists()


def test_a_wrong_password_is_refused_and_counts_toward_the_lockout(client, directory, settings):
    name = login_name(directory, "pm")
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert password_step(client, name, f"wrong {attempt}").status_code == 200
    assert AccessAttempt.objects.get(username=name).failures_since_start == settings.AXES_FAILURE_LIMIT - 1
    assert password_step(client, name, "wrong again").status_code == 429
    assert password_step(client, name, PASSWORD).status_code == 429  # even the right password now
    assert not User.objects.filter(username=name, is_staff=True).exists()
    failures = AuditEvent.objects.filter(action=Action.AUTH_LOGIN, outcome=Outcome.FAILURE)
    assert failures.count() >= settings.AXES_FAILURE_LIMIT
    assert AuditEvent.objects.filter(action=Action.SECURITY_LOGIN_LOCKED, outcome=Outcome.DENIED).exists()


def test_a_local_account_of_the_same_name_is_not_taken_over(client, directory):
    name = login_name(directory, "pm")
    local = User.objects.create_user(username=name, password="the local break-glass password", is_staff=True)

    assert password_step(client, name, PASSWORD).status_code == 200  # the directory password does not open it
    local.refresh_from_db()
    assert not local.groups.exists()
    assert not DirectoryAccount.objects.filter(user=local).exists()
    # the local (break-glass) password still works
    assert password_step(client.__class__(), name, "the local break-glass password").status_code == 302


def test_the_resident_login_page_never_asks_the_directory(client, directory):
    response = client.post("/accounts/login/", {"username": login_name(directory, "pm"), "password": PASSWORD})
    assert response.status_code == 200
    assert not User.objects.filter(username=login_name(directory, "pm")).exists()
