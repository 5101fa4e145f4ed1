"""The audit of sign-in: failures, lockouts, refused token requests and revocations are events with
pseudonymous refs and the client address; floods become one summary event per minute; the
admin revokes a resident's sessions and tokens, and unlinks provider identities."""

import datetime
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.utils import timezone
from oauth2_provider.models import get_access_token_model, get_application_model, get_refresh_token_model

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from identity import signin_audit
from identity.models import ProviderLink, SignInFlood
from identity.services.links import provider_link_create
from tests.admin.conftest import login_verified, staff_user

pytestmark = pytest.mark.django_db

PASSWORD = "a long resident password 2026"


def resident_login(client, username, password, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password, "next": "/accounts/signed-in/"},
                       **extra)


def test_failed_resident_logins_are_recorded_without_the_login_name(client, make_resident):
    resident = make_resident(email="ivanov@example.ru")
    resident.user.set_password(PASSWORD)
    resident.user.save()

    assert resident_login(client, "ivanov@example.ru", "wrong", REMOTE_ADDR="203.0.113.9").status_code == 200

    event = AuditEvent.objects.get(action=Action.AUTH_LOGIN)
    assert (event.outcome, event.reason, event.source_ip) == (Outcome.FAILURE, "password", "203.0.113.9")
    assert event.object_ref.startswith("login:")
    assert "ivanov" not in event.object_ref
    assert resident_login(client, "ivanov@example.ru", PASSWORD).status_code == 302
    success = AuditEvent.objects.get(action=Action.AUTH_LOGIN, outcome=Outcome.SUCCESS)
    assert success.actor_ref.startswith("user:")
    assert success.company_id == resident.company_id


def test_a_flood_of_failures_becomes_one_summary_per_minute(client, settings, monkeypatch):
    settings.IDENTITY_AUDIT_FLOOD_PER_MIN = 3
    settings.LOGIN_RATE_PER_IP = "1000/min"
    settings.AXES_FAILURE_LIMIT = 1000
    # the flood's minute is the clock's: held still, so the attempts cannot straddle two minutes
    now = timezone.now().replace(second=10)
    monkeypatch.setattr(signin_audit, "timezone", SimpleNamespace(now=lambda: now))
    for attempt in range(10):
        resident_login(client, f"guess{attempt}@example.ru", "wrong", REMOTE_ADDR="198.51.100.7")

    recorded = AuditEvent.objects.filter(action=Action.AUTH_LOGIN, outcome=Outcome.FAILURE)
    assert recorded.count() == 3
    assert SignInFlood.objects.get().suppressed == 7

    assert signin_audit.signin_floods_flush(now=now) == 0  # the minute is not over yet
    assert signin_audit.signin_floods_flush(now=now + datetime.timedelta(minutes=1)) == 1
    summary = recorded.get(object_type="flood")
    assert (summary.object_ref, summary.source_ip, summary.reason) == ("count:7", "198.51.100.7", "password")
    assert not SignInFlood.objects.exists()


def test_a_resident_lockout_writes_security_login_locked(client, make_resident, settings):
    resident = make_resident(email="ivanov@example.ru")
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        resident_login(client, "ivanov@example.ru", f"wrong {attempt}")
    assert resident_login(client, "ivanov@example.ru", "wrong again").status_code == 429
    locked = AuditEvent.objects.filter(action=Action.SECURITY_LOGIN_LOCKED)
    assert locked.exists()
    assert locked.first().object_ref.startswith("login:")
    assert resident.user.is_active


def test_refused_token_requests_are_recorded(client, mobile_app):
    response = client.post("/o/token/", {"grant_type": "authorization_code", "code": "nope",
                                         "client_id": "mobile-app", "redirect_uri": "ru.smarthome.app:/oauth2redirect",
                                         "code_verifier": "x" * 50})
    assert response.status_code == 400
    event = AuditEvent.objects.get(action=Action.AUTH_TOKEN_REFUSED)
    assert (event.outcome, event.reason, event.http_status) == (Outcome.DENIED, "invalid_grant", 400)


def _tokens(user):
    app = get_application_model().objects.get(client_id="mobile-app")
    expires = timezone.now() + datetime.timedelta(minutes=5)
    access = get_access_token_model().objects.create(user=user, application=app, token="a" * 40,
                                                     scope="devices:read", expires=expires)
    refresh = get_refresh_token_model().objects.create(user=user, application=app, token="r" * 40,
                                                       access_token=access)
    return access, refresh


def test_the_admin_revokes_a_residents_sessions_and_tokens(client, make_resident, mobile_app):
    resident = make_resident()
    access, refresh = _tokens(resident.user)
    resident_browser = client.__class__()
    resident_browser.force_login(resident.user)
    assert "_auth_user_id" in resident_browser.session

    admin = login_verified(client, staff_user("security-root", superuser=True))
    response = admin.post("/admin/access/resident/", {"action": "revoke_access", "_selected_action": [resident.pk]})

    assert response.status_code == 302
    assert not get_access_token_model().objects.filter(pk=access.pk).exists()
    refresh.refresh_from_db()
    assert refresh.revoked is not None
    page = resident_browser.get("/o/authorize/?client_id=mobile-app")
    assert page.status_code == 302
    assert "/accounts/login/" in page["Location"]  # the browser session is over
    event = AuditEvent.objects.get(action=Action.AUTH_TOKEN_REVOKE)
    assert event.reason == "admin.2"
    assert event.actor_kind == "staff"


def test_the_admin_unlinks_a_provider_identity(client, make_resident):
    resident = make_resident()
    provider_link_create(resident=resident, subject="kc-123", issuer="https://id.example/realms/residents")
    admin = login_verified(client, staff_user("pm-root", superuser=True))

    response = admin.post("/admin/access/resident/", {"action": "unlink_provider", "_selected_action": [resident.pk]})

    assert response.status_code == 302
    assert not ProviderLink.objects.exists()
    assert AuditEvent.objects.filter(action=Action.IDENTITY_LINK_DELETE).count() == 1


def test_the_admin_invites_residents_in_bulk(client, make_resident, smtp_server, django_capture_on_commit_callbacks):
    invited, no_email = make_resident(email="a@example.ru"), make_resident(email="")
    admin = login_verified(client, staff_user("pm-invites", superuser=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post("/admin/access/resident/", {
            "action": "invite_by_email", "_selected_action": [invited.pk, no_email.pk],
        }, follow=True)
    page = response.content.decode()
    assert "1 invitation(s) queued." in page
    assert "no e-mail address" in page
    assert [m["to"] for m in smtp_server.messages] == [["a@example.ru"]]
    assert AuditEvent.objects.get(action=Action.IDENTITY_INVITATION_CREATE).actor_kind == "staff"


def test_settings_of_the_identity_app_are_documented():
    text = (settings.BASE_DIR / "docs" / "configuration.md").read_text()
    names = [name for name in dir(settings) if name.startswith("IDENTITY_")]
    assert names
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, missing
    assert "`EMAIL_URL`" in text
