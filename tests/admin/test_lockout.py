"""django-axes locks a login out after AXES_FAILURE_LIMIT failures at the 2FA login page."""

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model

from tests.admin.conftest import PASSWORD, login_verified, staff_user, totp_device
from tests.admin.test_two_factor import password_step

pytestmark = pytest.mark.django_db


def test_repeated_failures_lock_the_login_out_even_for_the_right_password(client, world):
    user = staff_user("pm-locked", superuser=True)
    totp_device(user)
    limit = settings.AXES_FAILURE_LIMIT
    for attempt in range(limit - 1):
        response = password_step(client, user.username, f"wrong {attempt}")
        assert response.status_code == 200, attempt  # the form again, with an error
        assert "errornote" in response.content.decode() or "errorlist" in response.content.decode()
    response = password_step(client, user.username, "wrong again")
    assert response.status_code == 429
    locked = password_step(client, user.username, PASSWORD)
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Sign-in temporarily locked" in page
    assert "Вход временно заблокирован" in page
    assert "token-otp_token" not in page  # never reached the second factor
    attempt = AccessAttempt.objects.get(username=user.username)
    assert attempt.failures_since_start >= limit
    assert client.get("/admin/").status_code == 302


def test_failures_below_the_limit_do_not_lock(client, world):
    user = staff_user("pm-typo", superuser=True)
    totp_device(user)
    for attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        password_step(client, user.username, f"typo {attempt}")
    response = password_step(client, user.username, PASSWORD)
    assert response.status_code == 200
    assert "token-otp_token" in response.content.decode()


def test_the_lockout_is_visible_to_the_security_admin_only(client, world, users):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        password_step(client, "manager-a", f"guess {attempt}")
    assert AccessAttempt.objects.filter(username="manager-a").exists()

    login_verified(client, users.security)
    listing = client.get("/admin/axes/accessattempt/?locked_out=yes")
    assert listing.status_code == 200
    assert [a.username for a in listing.context["cl"].result_list] == ["manager-a"]

    client.logout()
    login_verified(client, users.manager)
    assert client.get("/admin/axes/accessattempt/").status_code == 403


def test_the_security_admin_unlocks_by_deleting_the_attempt(client, world, users):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        password_step(client, "manager-a", f"guess {attempt}")
    attempt = AccessAttempt.objects.get(username="manager-a")
    login_verified(client, users.security)
    response = client.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username="manager-a").exists()
    client.logout()
    response = password_step(client, "manager-a", PASSWORD)
    assert response.status_code == 302  # no device yet -> enrolment, i.e. the password was accepted


def test_lockout_records_keep_no_typed_password(client, world):
    """Failed logins at the admin's two-factor form and at the resident login, then the right
    password during the lockout: axes' records hold none of them (nor any other form field)."""
    staff = staff_user("pm-typed", superuser=True)
    totp_device(staff)
    get_user_model().objects.create_user("resident-typed", password=PASSWORD)
    typed = [f"typed secret {attempt}" for attempt in range(settings.AXES_FAILURE_LIMIT)]
    for password in typed:
        password_step(client, staff.username, password)
        client.post("/accounts/login/", {"username": "resident-typed", "password": password})
    assert password_step(client, staff.username, PASSWORD).status_code == 429
    assert client.post("/accounts/login/", {"username": "resident-typed", "password": PASSWORD}).status_code == 429

    attempts = list(AccessAttempt.objects.filter(username__in=[staff.username, "resident-typed"]))
    assert len(attempts) == 2
    assert all(a.failures_since_start >= settings.AXES_FAILURE_LIMIT for a in attempts)
    for attempt in attempts:
        assert attempt.post_data == ""
        stored = " ".join(str(getattr(attempt, f.attname)) for f in AccessAttempt._meta.concrete_fields)
        for password in (PASSWORD, *typed):
            assert password not in stored
