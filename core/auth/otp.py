"""Staff second factors at rest, and every change to them.

- TOTP authenticators are `core.models.EncryptedTOTPDevice` (key AES-256-GCM encrypted and bound
  to its row). django-otp's `TOTPDevice` stays installed only because django-two-factor-auth
  imports it; saving one is refused (`refuse_plaintext_totp_device`), so no key is ever
  written in clear again.
- Backup codes stay django-otp `StaticToken` rows (two_factor's login, profile and backup pages
  read them), but the `token` column holds a keyed digest of the code, never the code: 16 hex
  characters of HMAC-SHA256 under SECRET_KEY (Django's `salted_hmac`; the column holds 16
  characters at most). Codes are shown once when issued. `SECRET_KEY_FALLBACKS` keep codes
  issued under a previous secret usable.
- Enrolment, removal and new backup codes go through the services below: checked against
  `core.security.staff_policy` and announced for the audit log.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils.crypto import salted_hmac
from django_otp import devices_for_user
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

from core.models import EncryptedTOTPDevice
from core.security.identifiers import user_ref
from core.security.staff_changes import announce
from core.security.staff_policy import StaffChange, check_change

BACKUP_CODE_SALT = "core.auth.otp.backup_code"
BACKUP_CODE_DIGEST_CHARS = 16  # StaticToken.token is a CharField(max_length=16)
BACKUP_CODES_PER_ISSUE = 10


def normalise_backup_code(code: str) -> str:
    """Codes are lower-case base32; people type them with capitals, spaces or dashes."""
    return "".join(str(code).split()).replace("-", "").lower()


def backup_code_digest(code: str, *, secret: str | None = None) -> str:
    """What a StaticToken row stores for `code` (under SECRET_KEY unless `secret` is given)."""
    mac = salted_hmac(BACKUP_CODE_SALT, normalise_backup_code(code), secret=secret, algorithm="sha256")
    return mac.hexdigest()[:BACKUP_CODE_DIGEST_CHARS]


def backup_code_lookup_value(device, code: str) -> str:
    """The token value to verify `code` with on `device`: its digest under the secret it was
    stored with (SECRET_KEY, then each of SECRET_KEY_FALLBACKS); the current digest if none."""
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    candidates = [backup_code_digest(code, secret=secret) for secret in secrets]
    stored = set(StaticToken.objects.filter(device=device, token__in=candidates).values_list("token", flat=True))
    return next((candidate for candidate in candidates if candidate in stored), candidates[0])


def _announce_device(*, actor, user, reason: str) -> None:
    announce(actor=actor, object_type="otp_device", object_ref=user_ref(user), reason=reason)


@transaction.atomic
def totp_device_create(*, user, actor, key: str | None = None, name: str = "default", **params):
    """A confirmed TOTP authenticator for `user` (key: hex; a random 20-byte key when None).

    Checks: the policy (one's own, or a superuser). Records otp_device/totp_enrolled.
    `params`: step, t0, digits, tolerance, drift as agreed with the app during enrolment.
    """
    check_change(actor=actor, target=user, change=StaffChange.SECOND_FACTOR)
    device = EncryptedTOTPDevice(user=user, name=name, confirmed=True, **params)
    if key is not None:
        device.key = key
    device.save()
    _announce_device(actor=actor, user=user, reason="totp_enrolled")
    return device


@transaction.atomic
def backup_codes_issue(*, user, actor, count: int = BACKUP_CODES_PER_ISSUE) -> list[str]:
    """Replace `user`'s backup codes with `count` new ones; returns them (the only time they exist
    in clear). Checks: the policy. Records otp_device/backup_codes_issued."""
    check_change(actor=actor, target=user, change=StaffChange.SECOND_FACTOR)
    device = StaticDevice.objects.filter(user=user).first() or StaticDevice.objects.create(
        user=user, name="backup", confirmed=True
    )
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(count)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=backup_code_digest(code)) for code in codes)
    _announce_device(actor=actor, user=user, reason="backup_codes_issued")
    return codes


@transaction.atomic
def otp_device_save(*, actor, device) -> None:
    """Save an edited device (the admin: name, confirmed). Checks: the policy for its owner.
    Records otp_device/changed."""
    check_change(actor=actor, target=device.user, change=StaffChange.SECOND_FACTOR)
    device.save()
    _announce_device(actor=actor, user=device.user, reason="changed")


@transaction.atomic
def otp_device_delete(*, actor, device) -> None:
    """Remove one device (a lost phone). Checks: the policy for its owner. Records otp_device/deleted."""
    check_change(actor=actor, target=device.user, change=StaffChange.SECOND_FACTOR)
    _announce_device(actor=actor, user=device.user, reason="deleted")
    device.delete()


@transaction.atomic
def second_factors_remove(*, actor, user) -> int:
    """Remove every device of `user` (two_factor's "disable"). Checks: the policy.
    Records otp_device/all_removed. Returns how many were removed."""
    check_change(actor=actor, target=user, change=StaffChange.SECOND_FACTOR)
    devices = list(devices_for_user(user, confirmed=None))
    for device in devices:
        device.delete()
    _announce_device(actor=actor, user=user, reason="all_removed")
    return len(devices)


def refuse_plaintext_totp_device(sender, instance, **kwargs):
    """pre_save of django-otp's TOTPDevice: its key column is plain hex, so none is ever written."""
    raise ImproperlyConfigured(
        "django_otp's TOTPDevice stores its key in clear; staff TOTP devices are "
        "core.models.EncryptedTOTPDevice (core.auth.otp.totp_device_create)"
    )
