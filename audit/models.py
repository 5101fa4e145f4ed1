"""The audit log: immutable events, one Merkle log per management company, signed checkpoints.

Every event belongs to one log: its management company's (`company:<id>`) or, with no company,
the platform log. Within a log, positions follow the seals: the events of seal 1 in id order,
then those of seal 2, and so on (`audit.sealing`); they are implicit, never stored per event.
Each seal writes, per log it touched, a signed checkpoint holding the leaf hashes it added.

Nothing here is updated or deleted through Django (the manager and the model refuse) and, on
PostgreSQL, triggers reject UPDATE, DELETE and TRUNCATE (migrations 0002, 0003, 0005); the only
exception is retention pruning of events (`audit.services.audit_prune`), which keeps every
checkpoint and its leaf hashes so the logs still verify.

The single log that came before (`Legacy*`, tables audit_leaf, audit_checkpoint, audit_prune)
is kept as it was, read-only; `AuditLogLink` records how its events moved into the logs.
"""

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.actions import Action, ActorKind, Outcome
from audit.canonical import format_time

REF_PATTERN = r"^[A-Za-z0-9:._-]{0,64}$"
REASON_PATTERN = r"^[a-z0-9_.]{0,64}$"
IP_PATTERN = r"^[0-9A-Fa-f:.]{0,45}$"


class AppendOnlyViolation(Exception):
    """An attempt to change or remove an audit row."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyViolation(f"{self.model.__name__} rows are append-only")

    def delete(self):
        raise AppendOnlyViolation(f"{self.model.__name__} rows are append-only")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyViolation(f"{self.model.__name__} rows are append-only")

    def update_or_create(self, *args, **kwargs):
        raise AppendOnlyViolation(f"{self.model.__name__} rows are append-only")

    delete.queryset_only = True
    update.queryset_only = True


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyViolation(f"{type(self).__name__} rows are append-only")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyViolation(f"{type(self).__name__} rows are append-only")


class AuditEvent(AppendOnlyModel):
    """One thing that happened. Typed, short, machine-readable fields only: no free text."""

    id = models.BigAutoField(_("id"), primary_key=True)
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now, db_index=True)
    actor_kind = models.CharField(_("actor kind"), max_length=16, choices=ActorKind.choices)
    actor_ref = models.CharField(_("actor ref"), max_length=64, blank=True)
    action = models.CharField(_("action"), max_length=48, choices=Action.choices)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    object_type = models.CharField(_("object type"), max_length=32, blank=True)
    object_ref = models.CharField(_("object ref"), max_length=64, blank=True)
    partner_id = models.BigIntegerField(_("partner id"), null=True, blank=True)
    company_id = models.BigIntegerField(_("company id"), null=True, blank=True)
    building_id = models.BigIntegerField(_("building id"), null=True, blank=True)
    device_ref = models.CharField(_("device ref"), max_length=64, blank=True)
    reason = models.CharField(_("reason"), max_length=64, blank=True)
    request_id = models.CharField(_("request id"), max_length=64, blank=True)
    source_ip = models.CharField(_("source ip"), max_length=45, blank=True)
    latency_ms = models.DecimalField(_("latency ms"), max_digits=12, decimal_places=3, null=True, blank=True)
    http_status = models.PositiveSmallIntegerField(_("http status"), null=True, blank=True)
    # The person an event is about when they are not its actor (a partner's decision about a
    # resident's car or face): their pseudonymous ref, so their own history can find it. An
    # index for that lookup, not part of the sealed leaf (audit.canonical.FIELDS).
    subject_ref = models.CharField(_("subject ref"), max_length=64, blank=True, default="", db_default="")
    # the request that caused this event when it is not the current one (a partner call made
    # for a resident's request: the resident's request id, while request_id is the partner's)
    origin_request_id = models.CharField(_("origin request id"), max_length=64, blank=True, default="", db_default="")

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        db_table = "audit_event"
        # the admin's export with proof (the compliance officer's and the property manager's role)
        permissions = [("export_auditevent", "Can export the audit log with proof")]
        indexes = [
            models.Index(fields=["company_id", "occurred_at"], name="audit_event_company_time"),
            models.Index(fields=["request_id"], name="audit_event_request_id"),
            models.Index(fields=["action", "occurred_at"], name="audit_event_action_time"),
            models.Index(fields=["subject_ref", "occurred_at"], condition=~Q(subject_ref=""),
                          name="audit_event_subject_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(actor_kind__in=ActorKind.values), name="audit_event_actor_kind"),
            models.CheckConstraint(condition=Q(outcome__in=Outcome.values), name="audit_event_outcome"),
            models.CheckConstraint(condition=Q(action__regex=r"^[a-z_]+\.[a-z_]+$"), name="audit_event_action"),
            models.CheckConstraint(condition=Q(actor_ref__regex=REF_PATTERN), name="audit_event_actor_ref"),
            models.CheckConstraint(condition=Q(object_type__regex=REASON_PATTERN), name="audit_event_object_type"),
            models.CheckConstraint(condition=Q(object_ref__regex=REF_PATTERN), name="audit_event_object_ref"),
            models.CheckConstraint(condition=Q(device_ref__regex=REF_PATTERN), name="audit_event_device_ref"),
            models.CheckConstraint(condition=Q(subject_ref__regex=REF_PATTERN), name="audit_event_subject_ref"),
            models.CheckConstraint(condition=Q(request_id__regex=REF_PATTERN), name="audit_event_request_id"),
            models.CheckConstraint(condition=Q(origin_request_id__regex=REF_PATTERN),
                                   name="audit_event_origin_request_id"),
            models.CheckConstraint(condition=Q(reason__regex=REASON_PATTERN), name="audit_event_reason"),
            models.CheckConstraint(condition=Q(source_ip__regex=IP_PATTERN), name="audit_event_source_ip"),
            models.CheckConstraint(condition=Q(latency_ms__gte=0) | Q(latency_ms__isnull=True),
                                   name="audit_event_latency"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.action} {self.outcome}"


class AuditLog(AppendOnlyModel):
    """One Merkle log: a management company's, or the platform's (events of no company)."""

    PLATFORM = "platform"

    name = models.CharField(_("name"), max_length=40, unique=True)
    company_id = models.BigIntegerField(_("company id"), null=True, blank=True, unique=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("audit log")
        verbose_name_plural = _("audit logs")
        db_table = "audit_log"
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(company_id__isnull=True) & Q(name="platform")) | Q(company_id__gte=0),
                name="audit_log_company_or_platform",
            ),
        ]

    def __str__(self):
        return self.name


class AuditSeal(AppendOnlyModel):
    """One run of the sealer: which event ids it took, for every log at once.

    Its members are the events with `low_id < id <= high_id` that existed when it ran - ids in
    `gaps` (ranges [a, b]) did not (their transaction had not committed, or rolled back) -
    plus `late`: ids from earlier seals' gaps whose events have since appeared.
    """

    sealed_at = models.DateTimeField(_("sealed at"), default=timezone.now)
    low_id = models.BigIntegerField(_("low id"))
    high_id = models.BigIntegerField(_("high id"))
    gaps = models.JSONField(_("gaps"), default=list, blank=True)
    late = models.JSONField(_("late"), default=list, blank=True)
    events = models.BigIntegerField(_("events"), default=0)

    class Meta:
        verbose_name = _("audit seal")
        verbose_name_plural = _("audit seals")
        db_table = "audit_seal"
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(high_id__gte=F("low_id")), name="audit_seal_range")]

    def __str__(self):
        return f"seal {self.pk} ({self.low_id}, {self.high_id}]"


class AuditCheckpoint(AppendOnlyModel):
    """A signed tree head of one log: its first `tree_size` leaves hash to `root_hash`.

    `leaf_hashes` are the 32-byte leaf hashes this checkpoint added (positions
    `first_position`..`tree_size - 1`), so proofs and verification never depend on event rows
    still being there; `frontier` (hex hashes of the right edge) lets the next seal extend the
    tree without reading old leaves. Both are checked by `verify_audit`, never trusted by an
    export verifier.
    """

    log = models.ForeignKey(AuditLog, on_delete=models.PROTECT, related_name="checkpoints", verbose_name=_("log"))
    seal = models.ForeignKey(AuditSeal, on_delete=models.PROTECT, related_name="checkpoints", verbose_name=_("seal"))
    first_position = models.BigIntegerField(_("first position"))
    tree_size = models.BigIntegerField(_("tree size"))
    root_hash = models.CharField(_("root hash"), max_length=64)
    signed_at = models.DateTimeField(_("signed at"))
    key_id = models.CharField(_("key id"), max_length=64)
    signature = models.CharField(_("signature"), max_length=128)
    frontier = models.JSONField(_("frontier"), default=list)
    leaf_hashes = models.BinaryField(_("leaf hashes"))

    class Meta:
        verbose_name = _("audit checkpoint")
        verbose_name_plural = _("audit checkpoints")
        db_table = "audit_log_checkpoint"
        ordering = ["log_id", "-tree_size"]
        constraints = [
            models.UniqueConstraint(fields=["log", "tree_size"], name="audit_log_checkpoint_log_size"),
            models.UniqueConstraint(fields=["log", "seal"], name="audit_log_checkpoint_log_seal"),
            models.CheckConstraint(condition=Q(tree_size__gt=F("first_position")) & Q(first_position__gte=0),
                                   name="audit_log_checkpoint_range"),
        ]

    def __str__(self):
        return f"{self.log_id}: checkpoint {self.tree_size} {self.root_hash[:12]}"

    def as_document(self, log_name: str | None = None) -> dict:
        """The checkpoint as exported (what the signature covers, see audit.signing)."""

        return {
            "log": log_name or self.log.name,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "signed_at": format_time(self.signed_at),
            "key_id": self.key_id,
            "signature": self.signature,
        }


class AuditPrune(AppendOnlyModel):
    """One retention pruning of one log: its events at positions below `below_position` are gone.

    `below_position` is always the size of one of the log's checkpoints.
    """

    log = models.ForeignKey(AuditLog, on_delete=models.PROTECT, related_name="prunes", verbose_name=_("log"))
    below_position = models.BigIntegerField(_("below position"))
    cutoff = models.DateTimeField(_("cutoff"))
    deleted = models.BigIntegerField(_("deleted"))
    pruned_at = models.DateTimeField(_("pruned at"), default=timezone.now)

    class Meta:
        verbose_name = _("audit pruning")
        verbose_name_plural = _("audit prunings")
        db_table = "audit_log_prune"

    def __str__(self):
        return f"{self.log_id}: pruned below {self.below_position}"


class AuditLogLink(AppendOnlyModel):
    """The signed link from the single legacy log to the per-company logs (written once).

    `statement` names the legacy log's last checkpoint (size, root) and, for each log, the
    checkpoint that holds every event the legacy log had sealed (all of them were sealed by
    seals up to `seal`); `verify_audit` checks it against both sides.
    """

    seal = models.ForeignKey(AuditSeal, on_delete=models.PROTECT, related_name="+", verbose_name=_("seal"))
    statement = models.JSONField(_("statement"))
    signed_at = models.DateTimeField(_("signed at"))
    key_id = models.CharField(_("key id"), max_length=64)
    signature = models.CharField(_("signature"), max_length=128)

    class Meta:
        verbose_name = _("audit log link")
        verbose_name_plural = _("audit log links")
        db_table = "audit_log_link"

    def __str__(self):
        return f"legacy log linked at seal {self.seal_id}"


class AuditRefusal(models.Model):
    """Partner calls refused before any view ran, counted per minute, source and reason.

    `source` is `partner:<id>` when the certificate named a partner, else `ip:<address>`; a
    flood adds to `count` (one upsert, see audit.refusals) instead of adding rows. Counters,
    not evidence: not part of the Merkle logs (the bursts they raise are `security.alert` events).
    """

    minute = models.DateTimeField(_("minute"))
    source = models.CharField(_("source"), max_length=64)
    reason = models.CharField(_("reason"), max_length=32)
    partner_id = models.BigIntegerField(_("partner id"), null=True, blank=True)
    source_ip = models.CharField(_("source ip"), max_length=45, blank=True)
    count = models.BigIntegerField(_("count"), default=0)
    last_at = models.DateTimeField(_("last at"))

    class Meta:
        verbose_name = _("refused partner calls")
        verbose_name_plural = _("refused partner calls")
        db_table = "audit_refusal"
        ordering = ["-minute"]
        constraints = [
            models.UniqueConstraint(fields=["minute", "source", "reason"], name="audit_refusal_key"),
            models.CheckConstraint(condition=Q(reason__regex=REASON_PATTERN), name="audit_refusal_reason"),
            models.CheckConstraint(condition=Q(source_ip__regex=IP_PATTERN), name="audit_refusal_source_ip"),
        ]

    def __str__(self):
        return f"{self.minute:%Y-%m-%d %H:%M} {self.source} {self.reason} x{self.count}"


# --- the single log before per-company logs (read-only history) -------------------------------


class LegacyLeaf(AppendOnlyModel):
    """Position of an event in the single legacy Merkle tree (v1 leaves)."""

    position = models.BigIntegerField(_("position"), primary_key=True)
    event = models.OneToOneField(
        AuditEvent, on_delete=models.DO_NOTHING, db_constraint=False, related_name="legacy_leaf",
        verbose_name=_("event"),
    )
    leaf_hash = models.BinaryField(_("leaf hash"), max_length=32)

    class Meta:
        verbose_name = _("legacy leaf")
        verbose_name_plural = _("legacy leaves")
        db_table = "audit_leaf"
        constraints = [models.CheckConstraint(condition=Q(position__gte=0), name="audit_leaf_position")]

    def __str__(self):
        return f"legacy leaf {self.position} (event {self.event_id})"


class LegacyCheckpoint(AppendOnlyModel):
    """A signed tree head of the legacy log (v1 message, no log name)."""

    tree_size = models.BigIntegerField(_("tree size"), unique=True)
    root_hash = models.CharField(_("root hash"), max_length=64)
    signed_at = models.DateTimeField(_("signed at"))
    key_id = models.CharField(_("key id"), max_length=64)
    signature = models.CharField(_("signature"), max_length=128)
    frontier = models.JSONField(_("frontier"), default=list)

    class Meta:
        verbose_name = _("legacy checkpoint")
        verbose_name_plural = _("legacy checkpoints")
        db_table = "audit_checkpoint"
        ordering = ["-tree_size"]
        constraints = [models.CheckConstraint(condition=Q(tree_size__gt=0), name="audit_checkpoint_size")]

    def __str__(self):
        return f"legacy checkpoint {self.tree_size} {self.root_hash[:12]}"


class LegacyPrune(AppendOnlyModel):
    """A retention pruning of the legacy log."""

    below_position = models.BigIntegerField(_("below position"))
    cutoff = models.DateTimeField(_("cutoff"))
    deleted = models.BigIntegerField(_("deleted"))
    pruned_at = models.DateTimeField(_("pruned at"), default=timezone.now)

    class Meta:
        verbose_name = _("legacy pruning")
        verbose_name_plural = _("legacy prunings")
        db_table = "audit_prune"

    def __str__(self):
        return f"legacy pruned below {self.below_position}"
