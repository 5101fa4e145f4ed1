"""Who may sign in as whom: provider links, contact index, invitations, directory accounts.

Nothing here holds personal data in clear: a resident's phone and e-mail stay encrypted on
`access.Resident`; `ContactIndex` keeps only keyed hashes of them (exact-match lookups), and
invitation tokens are kept as SHA-256 digests.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ProviderLink(models.Model):
    """An identity at the residents' OpenID Connect provider (issuer + stable subject) that
    signs in as an existing resident. Created by a manager, the master-data sync or a first
    login whose verified claim matches exactly one resident; removed by a manager (unlink)."""

    class Origin(models.TextChoices):
        ADMIN = "admin", _("linked by a manager")
        CLAIM = "claim", _("linked at first login by a verified claim")
        SYNC = "sync", _("linked by the master-data sync")

    issuer = models.CharField(_("issuer"), max_length=255)
    subject = models.CharField(_("subject"), max_length=255)
    resident = models.ForeignKey("access.Resident", on_delete=models.CASCADE, related_name="provider_links",
                                 verbose_name=_("resident"))
    origin = models.CharField(_("origin"), max_length=8, choices=Origin.choices, default=Origin.ADMIN)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    last_login_at = models.DateTimeField(_("last login at"), null=True, blank=True)

    class Meta:
        verbose_name = _("provider link")
        verbose_name_plural = _("provider links")
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="provider_link_unique_subject")]
        ordering = ["-created_at"]

    def __str__(self):
        return _("Provider link #%(id)s") % {"id": self.pk}


class ProviderSession(models.Model):
    """A provider session (`sid`) a linked identity signed in with: a back-channel logout token
    may name only the sid."""

    link = models.ForeignKey(ProviderLink, on_delete=models.CASCADE, related_name="sessions", verbose_name=_("link"))
    sid = models.CharField(_("sid"), max_length=255, db_index=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("provider session")
        verbose_name_plural = _("provider sessions")
        constraints = [models.UniqueConstraint(fields=["link", "sid"], name="provider_session_unique")]

    def __str__(self):
        return _("Provider session #%(id)s") % {"id": self.pk}


class ContactIndex(models.Model):
    """A keyed hash of a resident's normalised phone or e-mail (identity.contacts): finds the
    resident a login name or a provider claim names without decrypting every row."""

    class Kind(models.TextChoices):
        PHONE = "phone", _("phone")
        EMAIL = "email", _("e-mail")

    resident = models.ForeignKey("access.Resident", on_delete=models.CASCADE, related_name="+",
                                 verbose_name=_("resident"))
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    digest = models.CharField(_("digest"), max_length=64, db_index=True)

    class Meta:
        verbose_name = _("contact index")
        verbose_name_plural = _("contact indexes")
        constraints = [models.UniqueConstraint(fields=["resident", "kind"], name="contact_index_one_per_kind")]

    def __str__(self):
        return _("Contact index #%(id)s") % {"id": self.pk}


class Invitation(models.Model):
    """A one-time link that lets a resident set a password: an invitation or a password reset.

    The token exists only in the message sent; `token_digest` is its SHA-256 (set when the
    message is built). It works once, until `expires_at`, and a newer link of the same purpose
    supersedes it.
    """

    class Purpose(models.TextChoices):
        INVITE = "invite", _("invitation")
        RESET = "reset", _("password reset")

    class Channel(models.TextChoices):
        EMAIL = "email", _("e-mail")
        SMS = "sms", _("SMS")

    resident = models.ForeignKey("access.Resident", on_delete=models.CASCADE, related_name="invitations",
                                 verbose_name=_("resident"))
    purpose = models.CharField(_("purpose"), max_length=8, choices=Purpose.choices)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    token_digest = models.CharField(_("token digest"), max_length=64, null=True, blank=True, unique=True,
                                    editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(_("expires at"))
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("created_at")), name="invitation_expires_later"),
        ]

    def __str__(self):
        return _("Invitation #%(id)s") % {"id": self.pk}

    def is_usable(self, at=None) -> bool:
        at = at or timezone.now()
        return (self.token_digest is not None and self.used_at is None and self.revoked_at is None
                and at < self.expires_at)


class DirectoryAccount(models.Model):
    """A staff user created and kept in step by the directory (LDAP / Active Directory).

    A local account of the same name is never taken over by the directory."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="directory_account",
                                verbose_name=_("user"))
    dn = models.CharField(_("dn"), max_length=512)
    synced_at = models.DateTimeField(_("synced at"), default=timezone.now)

    class Meta:
        verbose_name = _("directory account")
        verbose_name_plural = _("directory accounts")

    def __str__(self):
        return _("Directory account #%(id)s") % {"id": self.pk}


class SessionCutoff(models.Model):
    """Browser sessions of `user` that began before `not_before` are over (revoked)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                                verbose_name=_("user"))
    not_before = models.DateTimeField(_("not before"))

    class Meta:
        verbose_name = _("session cutoff")
        verbose_name_plural = _("session cutoffs")

    def __str__(self):
        return _("Session cutoff #%(id)s") % {"id": self.pk}


class SignInFlood(models.Model):
    """Sign-in failures beyond the per-minute threshold, counted instead of recorded one by one;
    a periodic task turns each finished minute into one summary audit event."""

    action = models.CharField(_("action"), max_length=48)
    outcome = models.CharField(_("outcome"), max_length=16)
    reason = models.CharField(_("reason"), max_length=64)
    source_ip = models.CharField(_("source ip"), max_length=45)
    minute = models.DateTimeField(_("minute"))
    suppressed = models.PositiveIntegerField(_("suppressed"), default=0)

    class Meta:
        verbose_name = _("sign-in flood")
        verbose_name_plural = _("sign-in floods")
        constraints = [
            models.UniqueConstraint(
                fields=["action", "outcome", "reason", "source_ip", "minute"], name="signin_flood_unique"
            )
        ]

    def __str__(self):
        return _("Sign-in flood #%(id)s") % {"id": self.pk}
