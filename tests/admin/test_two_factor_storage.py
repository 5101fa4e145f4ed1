"""Second factors at rest: TOTP keys encrypted and bound to their row, backup codes kept as digests,
and two_factor's pages (enrolment, login with TOTP or a backup code, new codes, disable) working
on them. The last tests pin the two_factor and django-otp internals this relies on, so an upgrade
that moves them fails here rather than in production.
"""

import base64
import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.urls import resolve
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from two_factor.plugins.registry import registry
from two_factor.utils import default_device

from audit.models import AuditEvent
from core.auth.otp import backup_code_digest, backup_codes_issue, totp_device_create
from core.auth.two_factor_pages import (
    BackupCodeForm,
    BackupCodesView,
    DisableSecondFactorsView,
    EncryptedGeneratorMethod,
    StaffLoginView,
    TOTPEnrolmentForm,
)
from core.crypto import DecryptionError
from core.models import EncryptedTOTPDevice
from core.security.identifiers import user_ref
from tests.admin.conftest import PASSWORD, backup_device, login_verified, staff_user
from tests.admin.test_two_factor import LOGIN, SETUP, current_token, password_step, token_step

pytestmark = pytest.mark.django_db


def raw_column(table: str, column: str, pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 - names are constants
        return cursor.fetchone()[0]


def write_column(table: str, column: str, pk, value) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, pk])  # noqa: S608


def backup_step(client, code, next_url="/admin/"):
    client.post(f"{LOGIN}?next={next_url}", {"login_view-current_step": "token", "wizard_goto_step": "backup"})
    return client.post(f"{LOGIN}?next={next_url}", {"login_view-current_step": "backup", "backup-otp_token": code})


def device_events(reason: str):
    return AuditEvent.objects.filter(action="admin.change", object_type="otp_device", reason=reason)


# --- TOTP keys -----------------------------------------------------------------------------------


def test_a_totp_key_is_stored_encrypted():
    user = staff_user("enc-1")
    key = "3132333435363738393031323334353637383930"
    device = totp_device_create(user=user, actor=None, key=key)
    stored = raw_column("core_encryptedtotpdevice", "encrypted_key", device.pk)
    b32 = base64.b32encode(bytes.fromhex(key)).decode()
    assert stored.startswith("v1:")
    for spelling in (key, key.upper(), b32.rstrip("=")):
        assert spelling not in stored
    fresh = EncryptedTOTPDevice.objects.get(pk=device.pk)
    assert fresh.key == key
    assert fresh.verify_token(TOTP(bytes.fromhex(key)).token())


def test_a_totp_key_copied_to_another_row_or_user_does_not_work():
    attacker, victim = staff_user("attacker"), staff_user("victim", superuser=True)
    own = totp_device_create(user=attacker, actor=None)
    target = totp_device_create(user=victim, actor=None)
    known_key = own.key
    # 1. the attacker's ciphertext copied onto the victim's device
    write_column("core_encryptedtotpdevice", "encrypted_key", target.pk,
                 raw_column("core_encryptedtotpdevice", "encrypted_key", own.pk))
    with pytest.raises(DecryptionError):
        EncryptedTOTPDevice.objects.get(pk=target.pk).bin_key  # noqa: B018
    # 2. the attacker's own device handed to the victim
    write_column("core_encryptedtotpdevice", "user_id", own.pk, victim.pk)
    with pytest.raises(DecryptionError):
        EncryptedTOTPDevice.objects.get(pk=own.pk).verify_token(TOTP(bytes.fromhex(known_key)).token())


def test_plaintext_totp_devices_of_django_otp_are_refused():
    user = staff_user("plain")
    with pytest.raises(ImproperlyConfigured, match="in clear"):
        TOTPDevice.objects.create(user=user, name="default")
    assert not TOTPDevice.objects.exists()


# --- the two_factor pages, end to end ------------------------------------------------------------


def test_enrolment_then_totp_login_then_backup_codes_then_backup_code_login(client, world):
    user = staff_user("pm-journey", superuser=True)
    assert password_step(client, user.username, PASSWORD)["Location"] == SETUP
    client.post(SETUP, {"setup_view-current_step": "welcome"})
    client.post(SETUP, {"setup_view-current_step": "method", "method-method": "generator"})
    secret = client.session["django_two_factor-qr_secret_key"]
    totp = TOTP(base64.b32decode(secret), 30, 0, 6, 0)
    done = client.post(SETUP, {"setup_view-current_step": "generator", "generator-token": f"{totp.token():06d}"})
    assert done.status_code == 302
    device = EncryptedTOTPDevice.objects.get(user=user)
    assert device.bin_key == base64.b32decode(secret)
    assert base64.b32decode(secret).hex() not in raw_column("core_encryptedtotpdevice", "encrypted_key", device.pk)
    assert "django_two_factor-qr_secret_key" not in client.session  # the wizard forgets the secret
    assert device_events("totp_enrolled").get().actor_ref == user_ref(user)

    # new backup codes: shown once in the response, digests in the database
    page = client.post("/account/two_factor/backup/tokens/")
    assert page.status_code == 200
    codes = re.findall(r'<li class="backup-code"><code>([a-z2-7]{8})</code></li>', page.content.decode())
    assert len(codes) == 10
    stored = set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert stored == {backup_code_digest(code) for code in codes}
    again = client.get("/account/two_factor/backup/tokens/").content.decode()
    assert not any(code in again for code in codes)
    assert "10" in again
    assert device_events("backup_codes_issued").get().actor_ref == user_ref(user)

    # TOTP login, then a backup-code login (typed with capitals and a space), then that code again
    client.logout()
    password_step(client, user.username, PASSWORD)
    device.refresh_from_db()
    totp_login = token_step(client, current_token(device))
    assert totp_login.status_code == 302
    assert client.get("/admin/").status_code == 200
    client.logout()
    password_step(client, user.username, PASSWORD)
    typed = f"{codes[0][:4].upper()} {codes[0][4:]}"
    assert backup_step(client, typed).status_code == 302
    assert client.get("/admin/").status_code == 200
    assert StaticToken.objects.filter(device__user=user).count() == 9
    client.logout()
    password_step(client, user.username, PASSWORD)
    reused = backup_step(client, codes[0])
    assert reused.status_code == 200
    assert "errorlist" in reused.content.decode()
    assert client.get("/admin/").status_code == 302


def test_a_stored_digest_is_no_backup_code(client, world):
    user = staff_user("pm-digest", superuser=True)
    EncryptedTOTPDevice.objects.create(user=user, name="default")
    backup_device(user, codes=("abcd2345",))
    password_step(client, user.username, PASSWORD)
    response = backup_step(client, backup_code_digest("abcd2345"))  # what a dump would show
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302
    assert StaticToken.objects.filter(device__user=user).count() == 1


def test_backup_codes_outlive_a_secret_key_rotation(client, world, settings):
    user = staff_user("pm-rotate", superuser=True)
    EncryptedTOTPDevice.objects.create(user=user, name="default")
    settings.SECRET_KEY = "old-secret-key-" + "o" * 40
    codes = backup_codes_issue(user=user, actor=None, count=2)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "new-secret-key-" + "n" * 40, [settings.SECRET_KEY]
    password_step(client, user.username, PASSWORD)
    assert backup_step(client, codes[1]).status_code == 302
    assert client.get("/admin/").status_code == 200
    assert StaticToken.objects.filter(device__user=user).count() == 1


def test_disabling_two_factor_removes_only_ones_own_devices_and_is_audited(client, world):
    user = staff_user("pm-disable", superuser=True)
    other = staff_user("pm-other")
    EncryptedTOTPDevice.objects.create(user=other, name="default")
    login_verified(client, user)
    backup_device(user)
    response = client.post("/account/two_factor/disable/", {"understand": "on"})
    assert response.status_code == 302
    assert not EncryptedTOTPDevice.objects.filter(user=user).exists()
    assert not StaticDevice.objects.filter(user=user).exists()
    assert EncryptedTOTPDevice.objects.filter(user=other).count() == 1
    event = device_events("all_removed").get()
    assert (event.actor_ref, event.object_ref) == (user_ref(user), user_ref(user))


# --- what an upgrade of two_factor or django-otp must not move ------------------------------------


def test_two_factor_uses_our_method_forms_and_views():
    assert isinstance(registry.get_method("generator"), EncryptedGeneratorMethod)
    assert registry.get_method("generator").get_setup_forms(None) == {"generator": TOTPEnrolmentForm}
    assert dict(StaffLoginView.form_list)[StaffLoginView.BACKUP_STEP] is BackupCodeForm
    for url, view in ((LOGIN, StaffLoginView), ("/account/two_factor/backup/tokens/", BackupCodesView),
                      ("/account/two_factor/disable/", DisableSecondFactorsView)):
        assert resolve(url).func.view_class is view, url
    assert resolve(SETUP).url_name == "setup"


def test_the_borrowed_totp_methods_read_only_fields_we_have():
    """EncryptedTOTPDevice runs django-otp's TOTPDevice.verify_token and config_url on its own fields."""
    theirs = {field.name for field in TOTPDevice._meta.concrete_fields} - {"id", "key"}
    ours = {field.name for field in EncryptedTOTPDevice._meta.concrete_fields}
    assert theirs <= ours
    for name in ("bin_key", "verify_token", "get_throttle_factor", "config_url", "_read_str_from_settings"):
        assert getattr(EncryptedTOTPDevice, name) is getattr(TOTPDevice, name), name


def test_two_factor_finds_our_devices_as_the_default_and_verifies_them():
    user = staff_user("pm-default")
    device = totp_device_create(user=user, actor=None)
    assert default_device(user) == device
    assert device.persistent_id == f"core.encryptedtotpdevice/{device.pk}"
    assert "secret=" in device.config_url
    assert device.verify_token(TOTP(device.bin_key).token())
    assert not device.verify_token(TOTP(device.bin_key).token())  # no replay
