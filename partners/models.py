"""Partner organisations, their contracts with management companies, and their credentials.

The contract is the legal basis of every call: which buildings, which operations, for what
purpose and how long data may be kept. Credentials are versioned: a rotation adds a row and
revokes the previous one, so the history stays. Secrets are encrypted at rest; the admin
shows their fingerprints only.
"""

import base64
import datetime
import hashlib

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.crypto.fields import EncryptedCharField
from core.crypto.models import EncryptedModel
from partners.key_material import fingerprint


class PartnerQuerySet(models.QuerySet):
    def usable(self):
        return self.filter(active=True, suspended_at__isnull=True)


class Partner(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    slug = models.SlugField(_("slug"), max_length=50, unique=True)
    api_base_url = models.URLField(_("api base url"), help_text=_("Base URL of the partner's API (https)"))
    audit_log_url = models.URLField(_("audit log url"), blank=True,
                                    help_text=_("The partner's audit log (GET ?since=), for reconciliation"))
    server_ca_pem = models.TextField(
        _("server ca pem"),
        blank=True, help_text=_("CA certificate (PEM) the partner's TLS server certificate must chain to (pinned)")
    )
    active = models.BooleanField(_("active"), default=True)
    suspended_at = models.DateTimeField(
        _("suspended at"),
        null=True, blank=True, help_text=_("Set when a security admin suspends the partner; every call is refused")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    objects = PartnerQuerySet.as_manager()

    class Meta:
        verbose_name = _("partner")
        verbose_name_plural = _("partners")
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def is_usable(self) -> bool:
        return self.active and self.suspended_at is None


class PartnerContractQuerySet(models.QuerySet):
    def active(self, at=None):
        at = at or timezone.now()
        return self.filter(valid_from__lte=at).filter(Q(valid_until__isnull=True) | Q(valid_until__gt=at))


class PartnerContract(models.Model):
    """A partner's agreement with a management company, incl. the data-processing terms."""

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="contracts", verbose_name=_("partner"))
    company = models.ForeignKey("access.ManagementCompany", on_delete=models.PROTECT, related_name="partner_contracts",
                                verbose_name=_("company"))
    buildings = models.ManyToManyField("access.Building", related_name="partner_contracts", blank=True,
                                       verbose_name=_("buildings"))
    allows_open = models.BooleanField(_("allows open"), default=False,
                                      help_text=_("Remote opening of doors and barriers"))
    allows_video = models.BooleanField(_("allows video"), default=False, help_text=_("Live video sessions"))
    allows_face = models.BooleanField(_("allows face"), default=False,
                                      help_text=_("Face recognition (needs the resident's consent)"))
    allows_plate = models.BooleanField(_("allows plate"), default=False,
                                       help_text=_("Licence-plate recognition at barriers"))
    valid_from = models.DateTimeField(_("valid from"), default=timezone.now)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    purpose = models.CharField(_("purpose"), max_length=500, help_text=_("Purpose of processing, as in the agreement"))
    retention_days = models.PositiveIntegerField(_("retention days"),
                                                 help_text=_("How long the partner may keep personal data"))
    subcontracting_forbidden = models.BooleanField(
        _("subcontracting forbidden"),
        default=True, help_text=_("The partner may not pass data to subcontractors (must stay on)")
    )
    agreement_ref = models.CharField(_("agreement ref"), max_length=128,
                                     help_text=_("Reference of the signed agreement (number, date)"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    objects = PartnerContractQuerySet.as_manager()

    class Meta:
        verbose_name = _("partner contract")
        verbose_name_plural = _("partner contracts")
        ordering = ["-valid_from", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(subcontracting_forbidden=True),
                name="contract_subcontracting_forbidden",
                violation_error_message="Contracts must forbid subcontracting.",
            ),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gt=F("valid_from")),
                name="contract_valid_until_after_valid_from",
                violation_error_message="A contract must end after it starts.",
            ),
            models.CheckConstraint(
                condition=Q(retention_days__gte=1), name="contract_retention_days_positive",
                violation_error_message="Retention must be at least one day.",
            ),
        ]

    def __str__(self):
        return _("Contract %(ref)s") % {"ref": self.agreement_ref}

    def is_active(self, at=None) -> bool:
        at = at or timezone.now()
        return self.valid_from <= at and (self.valid_until is None or at < self.valid_until)

    def allows(self, operation: str) -> bool:
        """operation: "open" | "video" | "face" | "plate"."""
        return bool(getattr(self, f"allows_{operation}"))


class PartnerCredentialsQuerySet(models.QuerySet):
    def current(self):
        return self.filter(revoked_at__isnull=True)

    def secrets_in_use(self, *, partner_id: int, at=None):
        """The partner's current credentials, then those revoked less than
        WEBHOOK_PREVIOUS_SECRET_GRACE_S before `at` by a normal rotation (newest first): whose
        webhook secrets still verify and sign. An emergency rotation leaves no grace."""
        at = at or timezone.now()
        grace = datetime.timedelta(seconds=settings.WEBHOOK_PREVIOUS_SECRET_GRACE_S)
        return self.filter(partner_id=partner_id).filter(
            Q(revoked_at__isnull=True) | Q(revoked_at__gt=at - grace, revoked_without_grace=False)
        ).order_by("-version")

    def plate_keys_accepted(self, at=None):
        """Credentials whose plate-token key decisions accept at `at` (newest first): the current
        ones, and a revoked version whose key is in its overlap - not retired (explicitly, by an
        emergency or a later rotation, or because it was never handed over) and revoked less than
        PLATE_TOKEN_KEY_OVERLAP_S before `at`."""
        at = at or timezone.now()
        overlap = datetime.timedelta(seconds=settings.PLATE_TOKEN_KEY_OVERLAP_S)
        return self.filter(
            Q(revoked_at__isnull=True)
            | Q(plate_key_retired_at__isnull=True, revoked_without_grace=False, revoked_at__gt=at - overlap)
        ).order_by("partner_id", "-version")

    def plate_keys_in_overlap(self, at=None):
        """Revoked versions whose plate-token key is still accepted (see `plate_keys_accepted`)."""
        return self.plate_keys_accepted(at).filter(revoked_at__isnull=False)


class PartnerCredentials(EncryptedModel):
    """One version of everything that connects us to a partner.

    - client_id / client_secret: what WE present at the partner's token endpoint;
    - client_cert_pem: the partner's client certificate when it calls us (pinned by fingerprint);
    - partner_public_key_pem: the key face photos are encrypted to (JWE recipient);
    - plate_token_key: HMAC key of plate tokens (base64, handed to the partner out of band:
      partners.key_material); after a normal rotation decisions accept it for an overlap until
      it is retired (`plate_key_retired_at`);
    - subject_key: key of the pairwise pseudonymous subject ids (never leaves us);
    - webhook_secret: Standard Webhooks secret (whsec_...) of the partner's signed events;
    - outbound_webhook_secret: Standard Webhooks secret (whsec_...) our events TO the partner are
      signed with (partners.outbound_events; shared with the partner out of band);
    - allowed_cidrs: networks the partner may call us from.
    """

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="credentials",
                                verbose_name=_("partner"))
    version = models.PositiveIntegerField(_("version"))
    client_id = models.CharField(_("client id"), max_length=100)
    client_secret = EncryptedCharField(_("client secret"), max_length=200)
    client_cert_pem = models.TextField(_("client cert pem"), blank=True)
    client_cert_fingerprint = models.CharField(_("client cert fingerprint"), max_length=64, blank=True,
                                               help_text=_("SHA-256 of the DER, hex"))
    partner_public_key_pem = models.TextField(_("partner public key pem"), blank=True)
    plate_token_key = EncryptedCharField(_("plate token key"), max_length=100)
    subject_key = EncryptedCharField(_("subject key"), max_length=100)
    webhook_secret = EncryptedCharField(_("webhook secret"), max_length=200)
    outbound_webhook_secret = EncryptedCharField(_("outbound webhook secret"), max_length=200, blank=True, default="")
    allowed_cidrs = models.JSONField(_("allowed cidrs"), default=list, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_without_grace = models.BooleanField(
        _("revoked without grace"),
        default=False, help_text=_("Revoked by an emergency rotation: its secrets stopped working at once")
    )
    handed_over_at = models.DateTimeField(
        _("handed over at"),
        null=True, blank=True, help_text=_("When its key material was last exported to the partner (encrypted)")
    )
    plate_key_retired_at = models.DateTimeField(
        _("plate key retired at"),
        null=True, blank=True, help_text=_("When decisions stopped accepting plate tokens under its key")
    )

    objects = PartnerCredentialsQuerySet.as_manager()

    class Meta:
        verbose_name = _("partner credentials")
        verbose_name_plural = _("partner credentials")
        ordering = ["partner_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "version"], name="credentials_version_unique_per_partner"),
            models.UniqueConstraint(
                fields=["partner"],
                condition=Q(revoked_at__isnull=True),
                name="credentials_one_current_per_partner",
                violation_error_message="A partner has at most one current set of credentials.",
            ),
        ]

    def __str__(self):
        return _("%(partner)s credentials v%(version)s") % {"partner": self.partner, "version": self.version}

    @property
    def is_current(self) -> bool:
        return self.revoked_at is None

    def plate_token_key_bytes(self) -> bytes:
        return base64.b64decode(self.plate_token_key)

    def subject_key_bytes(self) -> bytes:
        return base64.b64decode(self.subject_key)

    # Fingerprints the admin shows instead of the secrets.
    @property
    def client_secret_fingerprint(self) -> str:
        return fingerprint(self.client_secret)

    def plate_key_accepted_until(self) -> datetime.datetime | None:
        """For a revoked version in its overlap: when its plate-token key stops being accepted at
        the latest (None for the current version or a retired key)."""
        if self.revoked_at is None or self.plate_key_retired_at is not None or self.revoked_without_grace:
            return None
        return self.revoked_at + datetime.timedelta(seconds=settings.PLATE_TOKEN_KEY_OVERLAP_S)

    @property
    def plate_token_key_fingerprint(self) -> str:
        return fingerprint(self.plate_token_key_bytes())

    @property
    def subject_key_fingerprint(self) -> str:
        return fingerprint(self.subject_key_bytes())

    @property
    def webhook_secret_fingerprint(self) -> str:
        return fingerprint(self.webhook_secret)

    @property
    def outbound_webhook_secret_fingerprint(self) -> str:
        return fingerprint(self.outbound_webhook_secret) if self.outbound_webhook_secret else ""

    @property
    def partner_public_key_fingerprint(self) -> str:
        return public_key_fingerprint(self.partner_public_key_pem) if self.partner_public_key_pem else ""


def public_key_fingerprint(pem: str) -> str:
    """SHA-256 (hex) of the DER SubjectPublicKeyInfo of a PEM public key."""
    key = serialization.load_pem_public_key(pem.encode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


# --- transactional outbox (partners/outbox) ----------------------------------------------------


class OutboxMessage(models.Model):
    """A change that must reach a partner, written in the same transaction as the change itself.

    Delivered at least once, in order per (partner, ordering_key), with `idempotency_key` as
    the partner's Idempotency-Key. The payload holds pseudonymous ids and tokens only - except
    a face photo's JWE ciphertext, which is emptied once the partner has acknowledged it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        DELIVERED = "delivered", _("delivered")
        DEAD = "dead", _("dead-lettered")

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="outbox_messages",
                                verbose_name=_("partner"))
    operation = models.CharField(_("operation"), max_length=40, help_text=_("Handler name, e.g. face_delete"))
    ordering_key = models.CharField(_("ordering key"), max_length=128,
                                    help_text=_("Messages with the same key are delivered in order"))
    idempotency_key = models.CharField(_("idempotency key"), max_length=64, unique=True)
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    last_attempt_at = models.DateTimeField(_("last attempt at"), null=True, blank=True)
    # When a delivery task was last sent for it; the dispatcher re-sends after a lease (lost task).
    dispatched_at = models.DateTimeField(_("dispatched at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    dead_lettered_at = models.DateTimeField(_("dead lettered at"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=64, blank=True,
                                  help_text=_("Machine code of the last failure"))
    last_http_status = models.PositiveSmallIntegerField(_("last http status"), null=True, blank=True)
    result = models.JSONField(_("result"), default=dict, blank=True,
                              help_text=_("The partner's acknowledgement (e.g. deletion id)"))
    origin_request_id = models.CharField(_("origin request id"), max_length=64, blank=True, default="",
                                         help_text=_("The request that caused the message, named by its "
                                                     "delivery's audit events"))

    class Meta:
        verbose_name = _("outbox message")
        verbose_name_plural = _("outbox messages")
        ordering = ["id"]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="outbox_pending_due"),
            models.Index(fields=["partner", "ordering_key", "id"], condition=Q(status="pending"),
                         name="outbox_pending_per_key"),
            models.Index(fields=["status", "created_at"], name="outbox_status_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "delivered", "dead"]), name="outbox_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="delivered") | Q(delivered_at__isnull=False),
                name="outbox_delivered_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status="dead") | Q(dead_lettered_at__isnull=False),
                name="outbox_dead_has_time",
            ),
        ]

    def __str__(self):
        return _("Outbox message #%(id)s %(operation)s (%(status)s)") % {
            "id": self.pk, "operation": self.operation, "status": self.get_status_display()}


# --- partner API: OAuth2 client binding, RFC 8705 token binding, inbound webhooks ---------------


class PartnerApplication(models.Model):
    """Binds a django-oauth-toolkit client-credentials Application to the partner it authenticates."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="oauth_applications",
                                verbose_name=_("partner"))
    application = models.OneToOneField(
        "oauth2_provider.Application", on_delete=models.CASCADE, related_name="partner_binding",
        verbose_name=_("application"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("partner OAuth2 client")
        verbose_name_plural = _("partner OAuth2 clients")

    def __str__(self):
        return _("OAuth2 client of %(partner)s") % {"partner": self.partner}


class PartnerTokenBinding(models.Model):
    """RFC 8705 certificate binding of an access token: the x5t#S256 of the client certificate
    that requested it. The token is refused with any other certificate, or none."""

    access_token = models.OneToOneField(
        "oauth2_provider.AccessToken", on_delete=models.CASCADE, related_name="partner_cert_binding",
        verbose_name=_("access token"),
    )
    x5t_s256 = models.CharField(_("x5t s256"), max_length=64)

    class Meta:
        verbose_name = _("token binding")
        verbose_name_plural = _("token bindings")

    def __str__(self):
        return _("Token binding #%(id)s") % {"id": self.pk}


class InboundWebhook(models.Model):
    """A verified event a partner sent us; `webhook_id` de-duplicates replays."""

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="inbound_webhooks",
                                verbose_name=_("partner"))
    webhook_id = models.CharField(_("webhook id"), max_length=128)
    event_type = models.CharField(_("event type"), max_length=64)
    known = models.BooleanField(_("known"), default=True,
                                help_text=_("False: a type we do not handle yet (stored, acknowledged)"))
    payload = models.JSONField(_("payload"), default=dict, blank=True,
                               help_text=_("The event's data (pseudonymous ids only)"))
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("partner event")
        verbose_name_plural = _("partner events")
        ordering = ["-received_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "webhook_id"], name="inbound_webhook_unique_per_partner"),
        ]

    def __str__(self):
        return _("Partner event #%(id)s %(type)s") % {"id": self.pk, "type": self.event_type}
