"""Which local row a source system's record is, and which version of it was applied.

A mapping table rather than columns on the access models: a row may be known to more than one
source (tenant-core today, a spreadsheet or a second developer system tomorrow), the access
models stay what the admin and the partner path read, a deleted object keeps its tombstone (so a
stale upsert that arrives after the deletion is recognised as stale), and no access migration
(or the decision-cache triggers on those tables) has to change for it.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.crypto.fields import EncryptedTextField
from core.crypto.models import EncryptedModel


class Entity(models.TextChoices):
    """The record types of the integration API, in the order a batch applies them (a residency
    needs its resident and flat, a car's plate tokens need its resident's residencies)."""

    COMPANY = "company", _("company")
    BUILDING = "building", _("building")
    UNIT = "unit", _("flat")
    RESIDENT = "resident", _("resident")
    RESIDENCY = "residency", _("residency")
    VEHICLE = "vehicle", _("vehicle")


APPLY_ORDER = {entity: rank for rank, entity in enumerate(Entity.values)}


class ExternalRef(models.Model):
    """One record of a source system (`source`, `entity`, `external_id`) and the local row it is.

    `version`: the source's version of the last record applied or seen (an `updated_at` is kept
    as microseconds since the epoch); a record with a lower version is stale and not applied.
    `object_id` is the local primary key (None once deleted: the row stays as a tombstone with
    the deletion's version). `company` is the management company the row belongs to: what the
    source's client may write is checked against it.
    """

    source = models.CharField(_("source"), max_length=32)
    entity = models.CharField(_("record type"), max_length=16, choices=Entity.choices)
    external_id = models.CharField(_("external id"), max_length=64)
    object_id = models.BigIntegerField(_("object id"), null=True, blank=True)
    company = models.ForeignKey(
        "access.ManagementCompany", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("management company"),
    )
    version = models.BigIntegerField(_("version"))
    deleted = models.BooleanField(_("deleted"), default=False)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    class Meta:
        verbose_name = _("external record")
        verbose_name_plural = _("external records")
        constraints = [
            models.UniqueConstraint(fields=["source", "entity", "external_id"], name="external_ref_unique"),
            models.CheckConstraint(
                condition=models.Q(deleted=True) | models.Q(object_id__isnull=False),
                name="external_ref_live_has_object",
            ),
        ]
        indexes = [models.Index(fields=["source", "entity", "object_id"], name="external_ref_object")]

    def __str__(self):
        return f"{self.source}:{self.entity}:{self.external_id}"


class SpreadsheetImport(EncryptedModel):
    """One spreadsheet a manager uploaded into one management company: kept (encrypted, with its
    preview's counts) between the preview and the confirmation, then the record of what was applied.

    `payload` is the file itself, base64, encrypted at rest like every personal datum (the rows
    hold names and phones); it is erased once the import is applied or abandoned
    (`masterdata.services.imports`).
    """

    class Shape(models.TextChoices):
        RESIDENTS = "residents", _("residents with flats and cars")
        BUILDINGS = "buildings", _("buildings with flats")
        DEVICES = "devices", _("devices with partner refs")

    class Status(models.TextChoices):
        PREVIEWED = "previewed", _("previewed")
        APPLIED = "applied", _("applied")
        ABANDONED = "abandoned", _("abandoned")

    company = models.ForeignKey("access.ManagementCompany", on_delete=models.PROTECT, related_name="+",
                                verbose_name=_("management company"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+",
                                   verbose_name=_("uploaded by"))
    shape = models.CharField(_("contents"), max_length=16, choices=Shape.choices)
    file_format = models.CharField(_("file format"), max_length=8)
    file_name = models.CharField(_("file name"), max_length=200, blank=True)
    payload = EncryptedTextField(_("file"), blank=True)
    invite_channel = models.CharField(_("invitation channel"), max_length=8, blank=True)
    rows = models.PositiveIntegerField(_("rows"), default=0)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PREVIEWED)
    counts = models.JSONField(_("counts"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    applied_at = models.DateTimeField(_("applied at"), null=True, blank=True)

    class Meta:
        verbose_name = _("spreadsheet import")
        verbose_name_plural = _("spreadsheet imports")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return _("Import #%(id)s") % {"id": self.pk}
