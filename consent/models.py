"""Models of the consent app: consent texts, consents, face enrolments, deletion receipts.

Residents are referenced by id (`resident_id`, `company_id`, optional `building_id`), not by a
foreign key: consent sits below `access` in the import direction, and a consent record is
evidence that must outlive the resident row it is about (deletion keeps the history).
Consents are never edited in place: a change is a new row; only `revoked_at` /
`revoked_reason` are set once.
"""

import hashlib

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

FACE_PURPOSE = "face_access"


class ConsentPurpose(models.TextChoices):
    FACE_ACCESS = FACE_PURPOSE, _("face recognition for access")


class ConsentText(models.Model):
    """The exact wording shown to the resident, stored once and referenced by its SHA-256.

    A text is for one purpose and, normally, one partner (152-FZ: the consent names the
    processor) - optionally for one management company too (it names the operator). A text
    without a partner applies to every partner (kept for wordings published before texts
    were per partner). The current text for a (partner, company, purpose, language) is the
    newest of the most specific scope that has any: partner and company, else partner, else
    none (consent.selectors.consent_text_current).
    """

    version = models.CharField(_("version"), max_length=32)
    language = models.CharField(_("language"), max_length=8, default="ru")
    purpose = models.CharField(_("purpose"), max_length=32, choices=ConsentPurpose.choices,
                               default=ConsentPurpose.FACE_ACCESS)
    partner = models.ForeignKey(
        "partners.Partner", on_delete=models.PROTECT, null=True, blank=True, related_name="consent_texts",
        help_text=_("The partner (processor) the text names; empty: any partner"), verbose_name=_("partner"),
    )
    company_id = models.PositiveBigIntegerField(
        _("company id"),
        null=True, blank=True, db_index=True,
        help_text=_("The management company (operator) the text names; empty: any company of the partner"),
    )
    body = models.TextField(_("body"))
    sha256 = models.CharField(_("sha256"), max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("consent text")
        verbose_name_plural = _("consent texts")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "company_id", "purpose", "version", "language"],
                condition=Q(partner__isnull=False, company_id__isnull=False),
                name="consent_text_company_version_unique",
            ),
            models.UniqueConstraint(
                fields=["partner", "purpose", "version", "language"],
                condition=Q(partner__isnull=False, company_id__isnull=True),
                name="consent_text_partner_version_unique",
            ),
            models.UniqueConstraint(
                fields=["purpose", "version", "language"], condition=Q(partner__isnull=True),
                name="consent_text_version_language_unique",
            ),
            models.CheckConstraint(
                condition=Q(company_id__isnull=True) | Q(partner__isnull=False),
                name="consent_text_company_needs_partner",
                violation_error_message="A text for one company names its partner too.",
            ),
        ]

    def __str__(self):
        return _("Consent text %(version)s (%(language)s)") % {"version": self.version, "language": self.language}

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("a consent text is immutable: publish a new version")
        self.sha256 = hashlib.sha256(self.body.encode()).hexdigest()
        super().save(*args, **kwargs)


class ConsentQuerySet(models.QuerySet):
    def active(self, at=None):
        at = at or timezone.now()
        return self.filter(revoked_at__isnull=True, retention_until__gt=at)


class Consent(models.Model):
    class Channel(models.TextChoices):
        APP = "app", _("app")
        ADMIN = "admin", _("admin")

    Purpose = ConsentPurpose

    class RevokedReason(models.TextChoices):
        RESIDENT = "resident", _("revoked by the resident")
        ADMIN = "admin", _("revoked by an administrator")
        EXPIRED = "expired", _("retention period ended")
        MOVE_OUT = "move_out", _("residency ended")
        DELETED = "deleted", _("resident deleted")
        SUPERSEDED = "superseded", _("replaced by a newer consent")

    resident_id = models.PositiveBigIntegerField(_("resident id"), db_index=True)
    company_id = models.PositiveBigIntegerField(_("company id"), db_index=True)
    building_id = models.PositiveBigIntegerField(_("building id"), null=True, blank=True, db_index=True)
    partner = models.ForeignKey("partners.Partner", on_delete=models.PROTECT, related_name="consents",
                                verbose_name=_("partner"))
    purpose = models.CharField(_("purpose"), max_length=32, choices=Purpose.choices, default=Purpose.FACE_ACCESS)
    text = models.ForeignKey(ConsentText, on_delete=models.PROTECT, related_name="consents", verbose_name=_("text"))
    retention_until = models.DateTimeField(_("retention until"))
    granted_at = models.DateTimeField(_("granted at"), default=timezone.now)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_reason = models.CharField(_("revoked reason"), max_length=16, choices=RevokedReason.choices, blank=True)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices, default=Channel.APP)
    evidence_ip = models.GenericIPAddressField(_("evidence ip"), null=True, blank=True)
    evidence_user_agent_sha256 = models.CharField(_("evidence user agent sha256"), max_length=64, blank=True)

    objects = ConsentQuerySet.as_manager()

    IMMUTABLE_FIELDS = ("resident_id", "company_id", "building_id", "partner_id", "purpose", "text_id",
                        "retention_until", "granted_at", "channel", "evidence_ip", "evidence_user_agent_sha256")

    class Meta:
        ordering = ["-granted_at", "-id"]
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        permissions = [
            ("export_consent", "Can export consents (compliance)"),
            # the portal's consent pages: states and dates, never the evidence (address, device)
            ("view_consent_status", _("Can see whether residents consented (states and dates only)")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["resident_id", "partner", "purpose"], condition=Q(revoked_at__isnull=True),
                name="consent_one_open_per_resident_partner_purpose",
                violation_error_message="The resident already has an open consent for this partner and purpose.",
            ),
            models.CheckConstraint(
                condition=Q(retention_until__gt=F("granted_at")), name="consent_retention_after_grant"
            ),
            models.CheckConstraint(
                condition=Q(revoked_at__isnull=True) | ~Q(revoked_reason=""), name="consent_revocation_has_reason"
            ),
        ]

    def __str__(self):
        return _("Consent #%(id)s") % {"id": self.pk}

    def save(self, *args, **kwargs):
        if self.pk is not None:
            stored = type(self).objects.filter(pk=self.pk).values(*self.IMMUTABLE_FIELDS, "revoked_at").first()
            if stored is not None:
                changed = [f for f in self.IMMUTABLE_FIELDS if stored[f] != getattr(self, f)]
                if changed or (stored["revoked_at"] is not None and stored["revoked_at"] != self.revoked_at):
                    raise ValueError("a consent is never edited in place: give a new one")
        super().save(*args, **kwargs)

    @property
    def ref(self) -> str:
        return f"consent:{self.pk}"

    def is_active(self, at=None) -> bool:
        at = at or timezone.now()
        return self.revoked_at is None and self.retention_until > at


class FaceEnrolment(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        DELIVERED = "delivered", _("delivered")
        ACTIVE = "active", _("active")
        FAILED = "failed", _("failed")
        DELETING = "deleting", _("deletion pending")
        DELETED = "deleted", _("deleted")

    consent = models.ForeignKey(Consent, on_delete=models.PROTECT, related_name="enrolments", verbose_name=_("consent"))
    partner = models.ForeignKey("partners.Partner", on_delete=models.PROTECT, related_name="face_enrolments",
                                verbose_name=_("partner"))
    resident_id = models.PositiveBigIntegerField(_("resident id"), db_index=True)
    subject_id = models.CharField(_("subject id"), max_length=64, db_index=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    image_sha256 = models.CharField(_("image sha256"), max_length=64, blank=True,
                                    help_text=_("SHA-256 of the JPEG sent (not the image)"))
    outbox_message = models.ForeignKey(
        "partners.OutboxMessage", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("outbox message"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    class Meta:
        verbose_name = _("face enrolment")
        verbose_name_plural = _("face enrolments")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return _("Face enrolment #%(id)s") % {"id": self.pk}


class DeletionReceipt(models.Model):
    """The partner's confirmation that it deleted a subject's face (its deletion id)."""

    partner = models.ForeignKey("partners.Partner", on_delete=models.PROTECT, related_name="deletion_receipts",
                                verbose_name=_("partner"))
    subject_id = models.CharField(_("subject id"), max_length=64, db_index=True)
    deletion_id = models.CharField(_("deletion id"), max_length=128)
    outbox_message_id = models.PositiveBigIntegerField(_("outbox message id"), unique=True)
    confirmed_at = models.DateTimeField(_("confirmed at"), default=timezone.now)

    class Meta:
        verbose_name = _("deletion receipt")
        verbose_name_plural = _("deletion receipts")
        ordering = ["-confirmed_at"]

    def __str__(self):
        return _("Deletion receipt %(id)s") % {"id": self.deletion_id}
