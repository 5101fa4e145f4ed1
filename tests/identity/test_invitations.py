"""Invitations and password resets through a real SMTP server (aiosmtpd) and the SMS file gateway:
the link works once, then fails; an expired or superseded link fails; the reset page answers the
same for known and unknown people; every step is an audit event."""

import datetime
import json
from urllib.parse import urlparse

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_otp.oath import TOTP
from oauth2_provider.models import get_access_token_model, get_application_model

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from core.models import EncryptedTOTPDevice
from identity.models import Invitation
from identity.services.invitations import invitation_create, invitation_create_bulk
from tests.identity.helpers import link_in

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a long resident password 2026"


def path_of(link: str) -> str:
    return urlparse(link).path


def invite(resident, channel="email", **kwargs):
    return invitation_create(resident=resident, channel=channel, **kwargs)


def set_password(client, link: str, password: str = NEW_PASSWORD, **extra):
    opened = client.get(path_of(link))
    assert opened.status_code == 302, opened.content[:300]
    assert opened["Location"] == "/accounts/invitation/set-password/"  # the token leaves the URL at once
    assert opened["Referrer-Policy"] == "no-referrer"
    return client.post(opened["Location"], {"new_password1": password, "new_password2": password, **extra})


def test_an_invitation_by_email_works_once(client, smtp_server, make_resident, django_capture_on_commit_callbacks):
    resident = make_resident(email="ivanov@example.ru")
    with django_capture_on_commit_callbacks(execute=True):
        invite(resident)

    [message] = smtp_server.messages
    assert message["to"] == ["ivanov@example.ru"]
    assert "приглашение" in message["subject"]
    assert "invitation" in message["subject"]
    link = link_in(message["body"])
    invitation = Invitation.objects.get()
    assert link.split("/")[-2] not in invitation.token_digest  # only a digest is stored

    weak = set_password(client, link, password="12345678")
    assert weak.status_code == 200  # Django's password validators refuse it; the link still works
    done = set_password(client, link)
    assert done.status_code == 302
    assert done["Location"] == "/accounts/password/done/"
    resident.user.refresh_from_db()
    assert resident.user.check_password(NEW_PASSWORD)

    again = client.get(path_of(link))
    assert again.status_code == 404
    assert "Link not valid" in again.content.decode()
    assert "Ссылка недействительна" in again.content.decode()

    # the resident signs in with the e-mail the company registered
    login = client.post("/accounts/login/", {"username": "IVANOV@example.ru", "password": NEW_PASSWORD,
                                             "next": "/accounts/signed-in/"})
    assert login.status_code == 302
    assert login["Location"] == "/accounts/signed-in/"

    events = list(AuditEvent.objects.filter(action__startswith="identity.").order_by("id")
                  .values_list("action", "outcome", "reason"))
    assert events == [
        (Action.IDENTITY_INVITATION_CREATE, Outcome.SUCCESS, "invite.email"),
        (Action.IDENTITY_INVITATION_SEND, Outcome.SUCCESS, "invite.email"),
        (Action.IDENTITY_INVITATION_REDEEM, Outcome.SUCCESS, "invite.email"),
        (Action.IDENTITY_INVITATION_REDEEM, Outcome.DENIED, "used"),
    ]
    assert AuditEvent.objects.get(action=Action.AUTH_LOGIN, outcome=Outcome.SUCCESS).reason == "password"


def test_an_expired_link_fails(client, smtp_server, make_resident, django_capture_on_commit_callbacks):
    resident = make_resident()
    with django_capture_on_commit_callbacks(execute=True):
        invitation = invite(resident)
    link = link_in(smtp_server.messages[0]["body"])
    Invitation.objects.filter(pk=invitation.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=4), expires_at=timezone.now() - datetime.timedelta(days=1)
    )

    response = client.get(path_of(link))

    assert response.status_code == 404
    assert not resident.user.has_usable_password()
    assert AuditEvent.objects.get(action=Action.IDENTITY_INVITATION_REDEEM).reason == "expired"


def test_a_newer_invitation_supersedes_the_older_link(client, smtp_server, make_resident,
                                                      django_capture_on_commit_callbacks):
    resident = make_resident()
    with django_capture_on_commit_callbacks(execute=True):
        invite(resident)
    with django_capture_on_commit_callbacks(execute=True):
        invite(resident)
    first, second = (link_in(m["body"]) for m in smtp_server.messages)

    assert client.get(path_of(first)).status_code == 404
    assert set_password(client, second).status_code == 302


def test_an_sms_invitation_goes_through_the_gateway(client, settings, tmp_path, make_resident,
                                                    django_capture_on_commit_callbacks):
    settings.IDENTITY_SMS_BACKEND = "identity.channels.FileSmsGateway"
    settings.IDENTITY_SMS_FILE_DIR = str(tmp_path)
    resident = make_resident(phone="+7 916 000-00-07")
    with django_capture_on_commit_callbacks(execute=True):
        invite(resident, channel="sms")

    [sent] = tmp_path.iterdir()
    sms = json.loads(sent.read_text())
    assert sms["to"] == "+7 916 000-00-07"
    assert set_password(client, link_in(sms["text"])).status_code == 302


def test_a_refused_delivery_leaves_no_usable_link(settings, make_resident, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens
    resident = make_resident()
    with django_capture_on_commit_callbacks(execute=True):
        invitation = invite(resident)
    invitation.refresh_from_db()
    assert invitation.token_digest is None
    assert invitation.sent_at is None
    failures = AuditEvent.objects.filter(action=Action.IDENTITY_INVITATION_SEND, outcome=Outcome.FAILURE)
    assert failures.count() >= 1


def test_invitations_need_the_channel_contact_and_no_provider(settings, make_resident):
    with pytest.raises(ValidationError):
        invite(make_resident(email=""))
    settings.IDENTITY_OIDC_ISSUER, settings.IDENTITY_OIDC_CLIENT_ID = "https://id.example/realms/r", "smarthome"
    with pytest.raises(ValidationError):
        invite(make_resident())
    assert not Invitation.objects.exists()


def test_bulk_invitations_report_the_refused_ones(make_resident):
    with_email, without_email = make_resident(), make_resident(email="")
    created, refused = invitation_create_bulk(residents=[with_email, without_email], channel="email")
    assert [i.resident_id for i in created] == [with_email.pk]
    assert [r.pk for r, _error in refused] == [without_email.pk]


def test_the_reset_page_answers_the_same_for_known_and_unknown_people(client, smtp_server, make_resident,
                                                                      django_capture_on_commit_callbacks):
    resident = make_resident(email="ivanov@example.ru")
    with django_capture_on_commit_callbacks(execute=True):
        known = client.post("/accounts/password/reset/", {"identifier": "ivanov@example.ru"})
    with django_capture_on_commit_callbacks(execute=True):
        unknown = client.post("/accounts/password/reset/", {"identifier": "nobody@example.ru"})

    assert known.status_code == unknown.status_code == 200
    assert known.content == unknown.content
    [message] = smtp_server.messages
    assert message["to"] == ["ivanov@example.ru"]
    assert "password reset" in message["subject"]
    assert set_password(client, link_in(message["body"])).status_code == 302
    resident.user.refresh_from_db()
    assert resident.user.check_password(NEW_PASSWORD)
    denied = AuditEvent.objects.get(action=Action.IDENTITY_PASSWORD_RESET, outcome=Outcome.DENIED)
    assert denied.reason == "unknown"
    assert "nobody" not in denied.object_ref


def test_a_reset_revokes_the_residents_tokens(client, smtp_server, make_resident, mobile_app,
                                              django_capture_on_commit_callbacks):
    resident = make_resident()
    token = get_access_token_model().objects.create(
        user=resident.user, application=get_application_model().objects.get(), token="a" * 40, scope="devices:read",
        expires=timezone.now() + datetime.timedelta(minutes=5),
    )
    with django_capture_on_commit_callbacks(execute=True):
        invite(resident, purpose=Invitation.Purpose.RESET)
    assert set_password(client, link_in(smtp_server.messages[0]["body"])).status_code == 302
    assert not get_access_token_model().objects.filter(pk=token.pk).exists()
    assert AuditEvent.objects.filter(action=Action.AUTH_TOKEN_REVOKE, reason__startswith="password_reset").exists()


def test_a_one_time_code_app_can_be_added_and_is_then_asked_for(client, smtp_server, make_resident,
                                                                django_capture_on_commit_callbacks):
    resident = make_resident(phone="+79160000009")
    with django_capture_on_commit_callbacks(execute=True):
        invite(resident)
    response = set_password(client, link_in(smtp_server.messages[0]["body"]), with_totp="on")
    assert response["Location"] == "/accounts/password/code-app/"
    page = client.get(response["Location"])
    assert "<svg" in page.content.decode()
    device = EncryptedTOTPDevice.objects.get(user=resident.user)
    code = f"{TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token():06d}"
    assert client.post(response["Location"], {"otp_token": code})["Location"] == "/accounts/password/done/"
    assert EncryptedTOTPDevice.objects.get(user=resident.user).confirmed

    client.logout()
    password_step = client.post("/accounts/login/", {"username": "+7 916 000 00 09", "password": NEW_PASSWORD,
                                                     "next": "/accounts/signed-in/"})
    assert password_step["Location"] == "/accounts/login/code/"
    assert "_auth_user_id" not in client.session  # not signed in before the code
    assert client.post("/accounts/login/code/", {"otp_token": "000000"}).status_code == 200
    device.refresh_from_db()
    device.throttling_failure_count = 0
    device.throttling_failure_timestamp = None
    device.last_t = -1
    device.save()
    code = f"{TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token():06d}"
    signed_in = client.post("/accounts/login/code/", {"otp_token": code})
    assert signed_in["Location"] == "/accounts/signed-in/"
    assert AuditEvent.objects.filter(action=Action.AUTH_LOGIN, outcome=Outcome.SUCCESS,
                                     reason="password.otp").count() == 1
    assert AuditEvent.objects.filter(action=Action.AUTH_LOGIN, outcome=Outcome.FAILURE,
                                     reason="password.otp").count() == 1
