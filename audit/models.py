"""The audit log: immutable events, the Merkle leaves the sealer assigns, signed checkpoints.

Events are never updated or deleted through Django (the manager and the model refuse) and,
on PostgreSQL, a trigger rejects UPDATE and DELETE on all three tables (migration 0002);
the only exception is retention pruning of events (`audit.services.audit_prune`), which keeps
their leaves and every checkpoint so the log still verifies.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from audit.actions import Action, ActorKind, Outcome
from audit.canonical import format_time
from audit.signing import checkpoint_message

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

    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_ref = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=48, choices=Action.choices)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    object_type = models.CharField(max_length=32, blank=True)
    object_ref = models.CharField(max_length=64, blank=True)
    partner_id = models.BigIntegerField(null=True, blank=True)
    company_id = models.BigIntegerField(null=True, blank=True)
    building_id = models.BigIntegerField(null=True, blank=True)
    device_ref = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    source_ip = models.CharField(max_length=45, blank=True)
    latency_ms = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # The person an event is about when they are not its actor (a partner's decision about a
    # resident's car or face): their pseudonymous ref, so their own history can find it. An
    # index for that lookup, not part of the sealed leaf (audit.canonical.FIELDS).
    subject_ref = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        db_table = "audit_event"
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
            models.CheckConstraint(condition=Q(reason__regex=REASON_PATTERN), name="audit_event_reason"),
            models.CheckConstraint(condition=Q(source_ip__regex=IP_PATTERN), name="audit_event_source_ip"),
            models.CheckConstraint(condition=Q(latency_ms__gte=0) | Q(latency_ms__isnull=True),
                                   name="audit_event_latency"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.action} {self.outcome}"


class AuditLeaf(AppendOnlyModel):
    """Position of an event in the Merkle tree, written by the sealer (events stay untouched).

    `event` has no database constraint: when retention prunes an event, its leaf (and hash)
    stays, so every checkpoint still recomputes.
    """

    position = models.BigIntegerField(primary_key=True)
    event = models.OneToOneField(
        AuditEvent, on_delete=models.DO_NOTHING, db_constraint=False, related_name="leaf"
    )
    leaf_hash = models.BinaryField(max_length=32)

    class Meta:
        db_table = "audit_leaf"
        constraints = [models.CheckConstraint(condition=Q(position__gte=0), name="audit_leaf_position")]

    def __str__(self):
        return f"leaf {self.position} (event {self.event_id})"


class AuditCheckpoint(AppendOnlyModel):
    """A signed tree head: the first `tree_size` leaves hash to `root_hash`.

    `frontier` (hex hashes of the right edge) lets the next seal extend the tree without
    reading old leaves; it is checked by `verify_audit`, never trusted by an export verifier.
    """

    tree_size = models.BigIntegerField(unique=True)
    root_hash = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    key_id = models.CharField(max_length=64)
    signature = models.CharField(max_length=128)
    frontier = models.JSONField(default=list)

    class Meta:
        db_table = "audit_checkpoint"
        ordering = ["-tree_size"]
        constraints = [models.CheckConstraint(condition=Q(tree_size__gt=0), name="audit_checkpoint_size")]

    def __str__(self):
        return f"checkpoint {self.tree_size} {self.root_hash[:12]}"

    def as_document(self) -> dict:
        """The checkpoint as exported (what the signature covers, see audit.signing)."""
        return {
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "signed_at": format_time(self.signed_at),
            "key_id": self.key_id,
            "signature": self.signature,
            "signed_message": checkpoint_message(self.tree_size, self.root_hash, self.signed_at).decode(),
        }


class AuditPrune(AppendOnlyModel):
    """One retention pruning: events at positions below `below_position` may be gone."""

    below_position = models.BigIntegerField()
    cutoff = models.DateTimeField()
    deleted = models.BigIntegerField()
    pruned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "audit_prune"

    def __str__(self):
        return f"pruned below {self.below_position}"
