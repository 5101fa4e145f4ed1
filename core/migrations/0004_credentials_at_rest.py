"""Existing credentials leave the database in clear.

- TOTP devices move from django-otp's TOTPDevice (hex key) to EncryptedTOTPDevice (encrypted,
  bound to the new row); the authenticator apps keep working, same secret.
- Backup codes (django-otp StaticToken) are replaced by their keyed digests; the codes people
  hold keep working.
- django-axes' lockout records lose the form data they kept (passwords among it).
- Sessions move from django_session (key as sent in the cookie) to core_session under the
  key's SHA-256; signed-in people stay signed in (staff verify their second factor again, the
  device they verified with has a new id).

Only the TOTP move is reversed (the keys go back to django-otp's table); a digest cannot be
turned back into a code, and scrubbed form data is gone.
"""

from django.db import migrations

from core.auth.otp import backup_code_digest
from core.auth.sessions import session_key_digest
from core.models import totp_key_plaintext

TOTP_FIELDS = ("name", "confirmed", "throttling_failure_timestamp", "throttling_failure_count", "created_at",
               "last_used_at", "step", "t0", "digits", "tolerance", "drift", "last_t")


def encrypt_totp_keys(apps, schema_editor):
    Legacy = apps.get_model("otp_totp", "TOTPDevice")
    Encrypted = apps.get_model("core", "EncryptedTOTPDevice")
    for legacy in Legacy.objects.order_by("pk").iterator():
        device = Encrypted.objects.create(user_id=legacy.user_id, encrypted_key="",
                                          **{name: getattr(legacy, name) for name in TOTP_FIELDS})
        device.encrypted_key = totp_key_plaintext(legacy.user_id, device.pk, legacy.key)  # sealed under its id
        device.save(update_fields=["encrypted_key"])
        Encrypted.objects.filter(pk=device.pk).update(created_at=legacy.created_at)  # auto_now_add on create
        legacy.delete()


def decrypt_totp_keys(apps, schema_editor):
    Legacy = apps.get_model("otp_totp", "TOTPDevice")
    Encrypted = apps.get_model("core", "EncryptedTOTPDevice")
    for device in Encrypted.objects.order_by("pk").iterator():
        user_id, _, rest = device.encrypted_key.partition(":")
        device_id, _, key = rest.partition(":")
        if (user_id, device_id) != (str(device.user_id), str(device.pk)):
            raise ValueError(f"TOTP device {device.pk}: key sealed for another device or user")
        Legacy.objects.create(user_id=device.user_id, key=key, **{name: getattr(device, name) for name in TOTP_FIELDS})
        device.delete()


def hash_backup_codes(apps, schema_editor):
    StaticToken = apps.get_model("otp_static", "StaticToken")
    for token in StaticToken.objects.order_by("pk").iterator():
        token.token = backup_code_digest(token.token)
        token.save(update_fields=["token"])


def drop_lockout_form_data(apps, schema_editor):
    apps.get_model("axes", "AccessAttempt").objects.exclude(post_data="").update(post_data="")


def rehash_sessions(apps, schema_editor):
    Legacy = apps.get_model("sessions", "Session")
    Hashed = apps.get_model("core", "Session")
    for session in Legacy.objects.iterator():
        Hashed.objects.update_or_create(
            session_key=session_key_digest(session.session_key),
            defaults={"session_data": session.session_data, "expire_date": session.expire_date},
        )
    Legacy.objects.all().delete()


def drop_hashed_sessions(apps, schema_editor):
    apps.get_model("core", "Session").objects.all().delete()  # the keys cannot be recovered: sign in again


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0003_totp_devices_and_sessions"),
        ("otp_totp", "0003_add_timestamps"),
        ("otp_static", "0003_add_timestamps"),
        ("axes", "0010_accessattemptexpiration"),
        ("sessions", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(encrypt_totp_keys, decrypt_totp_keys),
        migrations.RunPython(hash_backup_codes, migrations.RunPython.noop),
        migrations.RunPython(drop_lockout_form_data, migrations.RunPython.noop),
        migrations.RunPython(rehash_sessions, drop_hashed_sessions),
    ]
