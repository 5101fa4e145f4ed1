"""Every admin page needs a verified second factor; enrolment for staff without a device."""

import contextlib
import re

import pytest
from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django_otp.oath import TOTP

from access.models import Building
from tests.admin.conftest import PASSWORD, login_verified, staff_user, totp_device

pytestmark = pytest.mark.django_db

LOGIN = "/account/login/"
SETUP = "/account/two_factor/setup/"


def admin_urls(world) -> list[str]:
    """The index, every app index, every registered model's list and add page, our own views."""
    urls = {reverse("admin:index"), reverse("admin:dashboard"), "/admin/autocomplete/?app_label=access"
            "&model_name=device&field_name=building"}
    urls.add(reverse("admin:building-dashboard", args=[world["a"][Building].pk]))
    for model in admin.site._registry:
        opts = model._meta
        urls.add(reverse("admin:app_list", args=[opts.app_label]))
        urls.add(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        with contextlib.suppress(NoReverseMatch):
            urls.add(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    for model, obj in world["a"].items():
        opts = model._meta
        urls.add(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
    return sorted(urls)


def test_the_url_list_covers_every_registered_model(world):
    urls = admin_urls(world)
    assert len(admin.site._registry) >= 12
    for model in admin.site._registry:
        assert reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist") in urls


def test_staff_without_a_device_is_sent_to_enrolment_from_every_admin_url(client, world):
    user = staff_user("fresh-root", superuser=True)  # permissions are never the reason here
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    for url in admin_urls(world):
        response = client.get(url)
        assert response.status_code == 302, url
        hop = client.get(response["Location"])
        assert hop.status_code == 302, url
        assert hop["Location"] == SETUP, url


def test_staff_with_an_unverified_session_is_sent_to_the_2fa_login(client, world):
    user = staff_user("half-root", superuser=True)
    totp_device(user)
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    for url in admin_urls(world):
        response = client.get(url)
        assert response.status_code == 302, url
        hop = client.get(response["Location"])
        assert hop.status_code == 302, url
        assert hop["Location"].startswith(LOGIN + "?next="), url


def test_anonymous_visitors_are_sent_to_the_2fa_login(client, world):
    response = client.get("/admin/access/resident/")
    assert response.status_code == 302
    assert client.get(response["Location"])["Location"].startswith(LOGIN)


def test_the_same_urls_open_once_verified(client, world):
    user = staff_user("verified-root", superuser=True)
    login_verified(client, user)
    for url in admin_urls(world):
        status = client.get(url).status_code
        # 403 only where a model admin refuses adding (append-only audit rows, issued credentials)
        expected = (200, 403) if url.endswith("/add/") else (200,)
        assert status in expected, url


def _login_step(client, data, next_url="/admin/"):
    return client.post(f"{LOGIN}?next={next_url}", data)


def password_step(client, username, password, next_url="/admin/"):
    return _login_step(client, {"login_view-current_step": "auth", "auth-username": username,
                                "auth-password": password}, next_url)


def token_step(client, token, next_url="/admin/"):
    return _login_step(client, {"login_view-current_step": "token", "token-otp_token": token}, next_url)


def current_token(device) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def test_password_plus_totp_opens_the_admin(client, world):
    user = staff_user("pm-login", superuser=True)
    device = totp_device(user)
    response = password_step(client, user.username, PASSWORD)
    assert response.status_code == 200  # the token step
    assert "token-otp_token" in response.content.decode()
    assert client.get("/admin/").status_code == 302  # a password alone is not a login
    response = token_step(client, current_token(device))
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_wrong_token_does_not_log_in(client, world):
    user = staff_user("pm-wrong", superuser=True)
    device = totp_device(user)
    password_step(client, user.username, PASSWORD)
    wrong = f"{(int(current_token(device)) + 1) % 1_000_000:06d}"
    response = token_step(client, wrong)
    assert response.status_code == 200
    assert re.search(r"(?i)invalid token|errorlist", response.content.decode())
    assert client.get("/admin/").status_code == 302


def test_password_login_without_a_device_leads_to_enrolment_with_a_qr_code(client, world):
    user = staff_user("pm-new", superuser=True)
    response = password_step(client, user.username, PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == SETUP
    assert client.get("/admin/").status_code == 302  # still not in
    client.post(SETUP, {"setup_view-current_step": "welcome"})
    page = client.post(SETUP, {"setup_view-current_step": "method", "method-method": "generator"})
    assert page.status_code == 200
    assert "QR" in page.content.decode()
    qr = client.get("/account/two_factor/qrcode/")
    assert qr.status_code == 200
    assert qr["Content-Type"].startswith("image/svg+xml")
    # finish enrolment with a token from the secret the page offered
    from base64 import b32decode

    secret = client.session["django_two_factor-qr_secret_key"]
    totp = TOTP(b32decode(secret), 30, 0, 6, 0)
    done = client.post(SETUP, {"setup_view-current_step": "generator", "generator-token": f"{totp.token():06d}"})
    assert done.status_code == 302
    assert client.get("/admin/").status_code == 200
    assert user.totp_devices.filter(confirmed=True).count() == 1


def test_twofactor_pages_use_no_external_assets(client, world):
    page = client.get(LOGIN).content.decode()
    assert "cdnjs" not in page
    assert "//" not in re.sub(r"https?://testserver", "", " ".join(re.findall(r'(?:src|href)="([^"]+)"', page)))
