"""Models of the project core (no domain data): data versions, staff TOTP devices, sessions."""

from django.conf import settings
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models, transaction
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.plugins.otp_totp.models import TOTPDevice, default_key, key_validator

from core.crypto.fields import EncryptedTextField
from core.crypto.keyring import DecryptionError
from core.crypto.models import EncryptedModel

TOTP_KEY_MAX_HEX = 80  # 40 bytes, as django-otp allows


class DataVersion(models.Model):
    """The counters behind the process-local caches of core.cache.versioned.

    `changes`: the number of the newest batch of `DataChange`s, bumped once per committing
    transaction that changed data a cache may hold (by PostgreSQL triggers deferred to commit,
    installed by the migrations of the apps that own the tables: the row lock it takes orders
    those commits, so a value becomes visible together with every change up to it).
    `pruned`: the newest batch that `versioned.changes_prune` has deleted from the log.
    """

    scope = models.CharField(_("scope"), primary_key=True, max_length=16)
    value = models.BigIntegerField(_("value"), default=0)

    class Meta:
        verbose_name = _("data version")
        verbose_name_plural = _("data versions")

    def __str__(self):
        return f"{self.scope}: {self.value}"


class DataChange(models.Model):
    """One tag a committed transaction changed (what a cached fact depends on: `access`,
    `tokens`, `r:<resident id>`, `t:<credential token>`), under its batch number `seq` (see
    DataVersion). Written only by the triggers' `core_data_change`; pruned after
    `versioned.CHANGES_KEPT_S` by the `core-data-changes-prune` beat task."""

    seq = models.BigIntegerField(_("batch number"))
    tag = models.CharField(_("tag"), max_length=100)
    changed_at = models.DateTimeField(_("changed at"), db_default=Now())

    class Meta:
        verbose_name = _("data change")
        verbose_name_plural = _("data changes")
        constraints = [models.UniqueConstraint(fields=["seq", "tag"], name="data_change_tag_once_per_batch")]
        indexes = [models.Index(fields=["changed_at"], name="data_change_changed_at")]

    def __str__(self):
        return f"{self.seq}: {self.tag}"


def totp_key_plaintext(user_id, device_id, key: str) -> str:
    """What EncryptedTOTPDevice encrypts: its owner's id, its own id, then the hex key (the row binding)."""
    return f"{user_id}:{device_id}:{key}"


class EncryptedTOTPDevice(EncryptedModel, TimestampMixin, ThrottlingMixin, Device):
    """A TOTP authenticator app of a user, its secret encrypted at rest.

    django-otp's own `TOTPDevice` keeps the key as hex in an 80-character column, so a database
    dump clones every authenticator. Here the key is AES-256-GCM encrypted with the field
    keyring (`encrypted_key`, rotated by `rotate_encryption_keys` like every encrypted column)
    and bound to its row: the sealed text starts with the owner's and the device's ids, so a
    ciphertext copied into another row, or a row handed to another user (say, one's own known
    key onto a superuser's device), is refused. django-otp needs integer ids, so a new device is
    inserted first and sealed under its id in the same transaction.

    Verification and the otpauth URI are django-otp's TOTPDevice methods, borrowed unchanged
    (they only read `bin_key` and the fields below, which match TOTPDevice's); two_factor finds
    these devices through `core.auth.two_factor_pages.EncryptedGeneratorMethod`.
    """

    # django-otp's own fields, redeclared unchanged but for their labels (django-otp has no Russian)
    name = models.CharField(_("name"), max_length=64, help_text=_("The human-readable name of this device."))
    confirmed = models.BooleanField(_("confirmed"), default=True, help_text=_("Is this device ready for use?"))
    throttling_failure_timestamp = models.DateTimeField(
        _("last failed attempt"), null=True, blank=True, default=None,
        help_text=_("A timestamp of the last failed verification attempt. Null if last attempt succeeded."),
    )
    throttling_failure_count = models.PositiveIntegerField(
        _("failed attempts in a row"), default=0, help_text=_("Number of successive failed attempts."))
    created_at = models.DateTimeField(
        _("created at"), null=True, blank=True, auto_now_add=True,
        help_text=_("The date and time when this device was initially created in the system."),
    )
    last_used_at = models.DateTimeField(
        _("last used at"), null=True, blank=True, help_text=_("The most recent date and time this device was used."))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp_devices",
        help_text=_("The user that this device belongs to."), verbose_name=_("user"),
    )
    encrypted_key = EncryptedTextField(_("encrypted key"), editable=False)
    step = models.PositiveSmallIntegerField(_("step"), default=30, help_text=_("The time step in seconds."))
    t0 = models.BigIntegerField(_("t0"), default=0, help_text=_("The Unix time at which to begin counting steps."))
    digits = models.PositiveSmallIntegerField(_("digits"), choices=[(6, 6), (8, 8)], default=6)
    tolerance = models.PositiveSmallIntegerField(_("tolerance"), default=1,
                                                 help_text=_("Time steps in the past or future allowed."))
    drift = models.SmallIntegerField(_("drift"), default=0,
                                     help_text=_("Time steps the prover deviates from our clock."))
    last_t = models.BigIntegerField(_("last t"), default=-1, help_text=_("The time step of the last verified token."))

    _unsealed_key: str | None = None  # a key set on this instance and not saved yet

    class Meta(Device.Meta):
        verbose_name = _("TOTP device")
        verbose_name_plural = _("TOTP devices")

    @property
    def key(self) -> str:
        """The secret as hex (TOTPDevice.key's format); DecryptionError if sealed for another row."""
        if self._unsealed_key is not None:
            return self._unsealed_key
        user_id, _, rest = (self.encrypted_key or "").partition(":")
        device_id, _, key = rest.partition(":")
        if not key or (user_id, device_id) != (str(self.user_id), str(self.pk)):
            raise DecryptionError("this TOTP key was sealed for another device or user")
        return key

    @key.setter
    def key(self, value: str) -> None:
        key_validator(value)
        if not value or len(value) > TOTP_KEY_MAX_HEX or len(value) % 2:
            raise ValueError(f"a TOTP key is 1 to {TOTP_KEY_MAX_HEX // 2} bytes of hex")
        self._unsealed_key = value

    def save(self, *args, **kwargs):
        if self._unsealed_key is None and self.encrypted_key:
            super().save(*args, **kwargs)
            return
        key = self._unsealed_key or default_key()
        with transaction.atomic(using=kwargs.get("using")):
            if self.pk is None:
                super().save(*args, **kwargs)  # to learn the id; sealed before the transaction ends
                args, kwargs = (), {"using": kwargs.get("using"), "update_fields": ["encrypted_key"]}
            elif kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "encrypted_key"}
            self.encrypted_key = totp_key_plaintext(self.user_id, self.pk, key)
            super().save(*args, **kwargs)
        self._unsealed_key = None

    bin_key = TOTPDevice.bin_key
    verify_token = TOTPDevice.verify_token
    get_throttle_factor = TOTPDevice.get_throttle_factor
    config_url = TOTPDevice.config_url
    _read_str_from_settings = TOTPDevice._read_str_from_settings


class Session(EncryptedModel, AbstractBaseSession):
    """A browser session stored under the SHA-256 of its key (`core.auth.sessions`).

    The cookie carries the key; this table only its digest, so a database dump holds no
    session anyone could present. The data is encrypted too (it holds, for a moment, the
    secret of a TOTP device being enrolled).
    """

    session_key = models.CharField(_("session key digest"), max_length=64, primary_key=True)
    session_data = EncryptedTextField(_("session data"))

    class Meta(AbstractBaseSession.Meta):
        db_table = "core_session"

    @classmethod
    def get_session_store_class(cls):
        from core.auth.sessions import SessionStore

        return SessionStore
