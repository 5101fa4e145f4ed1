"""Migration core/0004: credentials already in the database leave it in clear, and keep working.

The migration's functions run on the historical models of the state before it (as `migrate`
runs them), over rows written the way the old code wrote them.
"""

import importlib

import pytest
from axes.models import AccessAttempt
from django.contrib.sessions.backends.db import SessionStore as DjangoSessionStore
from django.contrib.sessions.models import Session as DjangoSession
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex

from core.auth.otp import backup_code_digest
from core.auth.sessions import SessionStore
from core.models import EncryptedTOTPDevice, Session
from tests.admin.conftest import PASSWORD, staff_user
from tests.admin.test_two_factor import current_token, password_step, token_step
from tests.admin.test_two_factor_storage import backup_step, raw_column

pytestmark = pytest.mark.django_db

migration = importlib.import_module("core.migrations.0004_credentials_at_rest")


@pytest.fixture
def old_apps():
    """The models as `migrate` hands them to 0004: the state right before it."""
    return MigrationLoader(connection).project_state(migration.Migration.dependencies).apps


def test_totp_devices_move_to_encrypted_storage_and_keep_their_secret(client, old_apps):
    user = staff_user("legacy-totp", superuser=True)
    key = random_hex(20)
    old_apps.get_model("otp_totp", "TOTPDevice").objects.create(
        user_id=user.pk, name="default", key=key, confirmed=True, drift=1, last_t=5)
    migration.encrypt_totp_keys(old_apps, None)
    assert not TOTPDevice.objects.exists()
    device = EncryptedTOTPDevice.objects.get(user=user)
    assert (device.key, device.name, device.drift, device.last_t, device.confirmed) == (key, "default", 1, 5, True)
    assert key not in raw_column("core_encryptedtotpdevice", "encrypted_key", device.pk)
    password_step(client, user.username, PASSWORD)
    assert token_step(client, current_token(device)).status_code == 302  # the same authenticator app
    assert client.get("/admin/").status_code == 200

    migration.decrypt_totp_keys(old_apps, None)  # and back, for a rollback
    assert not EncryptedTOTPDevice.objects.exists()
    assert old_apps.get_model("otp_totp", "TOTPDevice").objects.get(user_id=user.pk).key == key


def test_backup_codes_are_replaced_by_their_digests_and_keep_working(client, old_apps):
    user = staff_user("legacy-codes", superuser=True)
    EncryptedTOTPDevice.objects.create(user=user, name="default")
    device = StaticDevice.objects.create(user=user, name="backup")
    for code in ("abcd2345", "efgh6723"):
        StaticToken.objects.create(device=device, token=code)  # as django-otp stored them: in clear
    migration.hash_backup_codes(old_apps, None)
    assert set(StaticToken.objects.values_list("token", flat=True)) == {
        backup_code_digest("abcd2345"), backup_code_digest("efgh6723")}
    password_step(client, user.username, PASSWORD)
    assert backup_step(client, "efgh6723").status_code == 302
    assert client.get("/admin/").status_code == 200


def test_lockout_records_lose_their_form_data(old_apps):
    AccessAttempt.objects.bulk_create([AccessAttempt(  # bulk: as rows written before the pre_save receiver
        username="pm", ip_address="192.0.2.1", user_agent="ua", http_accept="*/*", path_info="/account/login/",
        get_data="next=/admin/", post_data="auth-username=pm\nauth-password=hunter2-the-real-one",
        failures_since_start=5)])
    migration.drop_lockout_form_data(old_apps, None)
    attempt = AccessAttempt.objects.get(username="pm")
    assert attempt.post_data == ""
    assert attempt.get_data == "next=/admin/"


def test_sessions_move_under_their_digest_and_stay_signed_in(old_apps):
    legacy = DjangoSessionStore()
    legacy["_auth_user_id"] = "42"
    legacy.save()
    key = legacy.session_key
    assert DjangoSession.objects.filter(session_key=key).exists()  # Django's store: the key in clear
    migration.rehash_sessions(old_apps, None)
    assert not DjangoSession.objects.exists()
    assert not Session.objects.filter(session_key=key).exists()
    assert SessionStore(key).load() == {"_auth_user_id": "42"}

