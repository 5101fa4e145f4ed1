"""Buildings, the people who live in them, their devices, vehicles and access grants.

Personal data (a resident's name, phone, e-mail; a vehicle's plate) is encrypted at rest with
AES-256-GCM (core.crypto). `__str__` never prints it: a resident is "Resident #12".
"""

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone as dj_timezone
from django.utils.translation import gettext_lazy as _

from access.schedules import validate_weekly_schedule
from core.crypto.fields import EncryptedCharField
from core.crypto.models import EncryptedModel


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("%(value)s is not an IANA time zone"), code="timezone", params={"value": value})


class ManagementCompany(models.Model):
    """A property-management company ("управляющая компания"): the unit of tenancy in the admin."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    created_at = models.DateTimeField(_("created"), default=dj_timezone.now, editable=False)

    class Meta:
        verbose_name = _("management company")
        verbose_name_plural = _("management companies")
        ordering = ["name"]

    def __str__(self):
        return self.name


class StaffMembership(models.Model):
    """A staff user works for a management company: what the admin is scoped by."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_memberships",
                             verbose_name=_("staff user"))
    company = models.ForeignKey(ManagementCompany, on_delete=models.CASCADE, related_name="staff_memberships",
                                verbose_name=_("management company"))
    created_at = models.DateTimeField(_("created"), default=dj_timezone.now, editable=False)

    class Meta:
        verbose_name = _("staff membership")
        verbose_name_plural = _("staff memberships")
        constraints = [models.UniqueConstraint(fields=["user", "company"], name="staff_membership_unique")]

    def __str__(self):
        return _("Staff membership #%(id)s") % {"id": self.pk}


class Building(models.Model):
    company = models.ForeignKey(ManagementCompany, on_delete=models.PROTECT, related_name="buildings",
                                verbose_name=_("management company"))
    name = models.CharField(_("name"), max_length=200)
    address = models.CharField(_("address"), max_length=300)  # a building's address is not personal data
    timezone = models.CharField(_("time zone"), max_length=64, default="Europe/Moscow",
                                validators=[validate_timezone])
    created_at = models.DateTimeField(_("created"), default=dj_timezone.now, editable=False)

    class Meta:
        verbose_name = _("building")
        verbose_name_plural = _("buildings")
        ordering = ["company_id", "name"]
        constraints = [models.UniqueConstraint(fields=["company", "name"], name="building_name_unique_per_company")]

    def __str__(self):
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Unit(models.Model):
    """A flat (or another premises) in a building."""

    building = models.ForeignKey(Building, on_delete=models.PROTECT, related_name="units", verbose_name=_("building"))
    number = models.CharField(_("flat number"), max_length=16)

    class Meta:
        verbose_name = _("flat")
        verbose_name_plural = _("flats")
        ordering = ["building_id", "number"]
        constraints = [models.UniqueConstraint(fields=["building", "number"], name="unit_number_unique_per_building")]

    def __str__(self):
        return f"{self.building} / {self.number}"


class Resident(EncryptedModel):
    """A person who lives in (or owns) a flat; signs in to the app as `user`.

    `company` is the management company that registered the resident: the admin scope for a
    resident without a current residency. Name, phone and e-mail are encrypted at rest.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="resident",
                                verbose_name=_("app account"))
    company = models.ForeignKey(ManagementCompany, on_delete=models.PROTECT, related_name="residents",
                                verbose_name=_("management company"))
    full_name = EncryptedCharField(_("full name"), max_length=200)
    phone = EncryptedCharField(_("phone"), max_length=32, blank=True)
    email = EncryptedCharField(_("e-mail"), max_length=254, blank=True)
    suspended = models.BooleanField(_("suspended"), default=False,
                                    help_text=_("Suspended residents are denied everywhere"))
    created_at = models.DateTimeField(_("created"), default=dj_timezone.now, editable=False)

    class Meta:
        verbose_name = _("resident")
        verbose_name_plural = _("residents")
        ordering = ["id"]

    def __str__(self):
        return _("Resident #%(id)s") % {"id": self.pk}


class ResidentSearchTerm(models.Model):
    """One keyed digest a resident is found by in the admin (a word of the name, the phone, the
    e-mail: access.search); written with the values by access.services.residents."""

    resident = models.ForeignKey(Resident, on_delete=models.CASCADE, related_name="search_terms",
                                 verbose_name=_("resident"))
    digest = models.CharField(_("digest"), max_length=64, db_index=True)

    class Meta:
        verbose_name = _("resident search term")
        verbose_name_plural = _("resident search terms")
        constraints = [models.UniqueConstraint(fields=["resident", "digest"], name="resident_search_term_unique")]

    def __str__(self):
        return _("Search term #%(id)s") % {"id": self.pk}


class Residency(models.Model):
    class Kind(models.TextChoices):
        OWNER = "owner", _("owner")
        TENANT = "tenant", _("tenant")

    resident = models.ForeignKey(Resident, on_delete=models.CASCADE, related_name="residencies",
                                 verbose_name=_("resident"))
    unit = models.ForeignKey(Unit, on_delete=models.PROTECT, related_name="residencies", verbose_name=_("flat"))
    kind = models.CharField(_("as"), max_length=8, choices=Kind.choices)
    valid_from = models.DateField(_("moved in"), default=dj_timezone.localdate)
    valid_until = models.DateField(_("moves out"), null=True, blank=True,
                                   help_text=_("Move-out date (exclusive); empty = open-ended"))

    class Meta:
        verbose_name = _("residency")
        verbose_name_plural = _("residencies")
        ordering = ["-valid_from", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gt=F("valid_from")),
                name="residency_valid_until_after_valid_from",
                violation_error_message=_("A residency must end after it starts."),
            ),
        ]

    def __str__(self):
        return _("Residency #%(id)s") % {"id": self.pk}

    def is_current(self, on=None) -> bool:
        on = on or dj_timezone.localdate()
        return self.valid_from <= on and (self.valid_until is None or on < self.valid_until)


class Device(models.Model):
    class Kind(models.TextChoices):
        INTERCOM_DOOR = "intercom_door", _("intercom door")
        BARRIER = "barrier", _("barrier")
        CAMERA = "camera", _("camera")

    building = models.ForeignKey(Building, on_delete=models.PROTECT, related_name="devices",
                                 verbose_name=_("building"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    name = models.CharField(_("name"), max_length=100)
    partner = models.ForeignKey("partners.Partner", on_delete=models.PROTECT, related_name="devices",
                                verbose_name=_("partner"))
    partner_device_ref = models.CharField(
        _("partner's device id"), max_length=64, help_text=_("The partner's id of this device (used in its API paths)")
    )
    online = models.BooleanField(_("online"), default=False)
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    state_changed_at = models.DateTimeField(
        _("state changed"), null=True, blank=True, editable=False,
        help_text=_("When the online state now stored happened (an older report that arrives later is ignored)"),
    )

    class Meta:
        verbose_name = _("device")
        verbose_name_plural = _("devices")
        permissions = [("open_device", _("Can open doors and barriers remotely (for a courier or a visitor)"))]
        ordering = ["building_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "partner_device_ref"], name="device_ref_unique_per_partner"),
        ]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"


class AccessGrantQuerySet(models.QuerySet):
    def held_by(self, resident_id: int):
        """Grants the resident holds, personally or through one of their residencies."""
        return self.filter(Q(resident_id=resident_id) | Q(residency__resident_id=resident_id))

    def covering(self, device: "Device"):
        """Grants for the device itself or for its whole building."""
        return self.filter(Q(device_id=device.pk) | Q(building_id=device.building_id))


class AccessGrant(models.Model):
    """Who may pass where and when.

    The holder is a resident (personally) or a residency (ends with it); the target is a whole
    building or one device. Exactly one of each pair is set (database constraints).
    """

    resident = models.ForeignKey(Resident, on_delete=models.CASCADE, null=True, blank=True, related_name="grants",
                                 verbose_name=_("resident"))
    residency = models.ForeignKey(
        Residency, on_delete=models.CASCADE, null=True, blank=True, related_name="grants", verbose_name=_("residency")
    )
    building = models.ForeignKey(Building, on_delete=models.CASCADE, null=True, blank=True, related_name="grants",
                                 verbose_name=_("whole building"))
    device = models.ForeignKey(Device, on_delete=models.CASCADE, null=True, blank=True, related_name="grants",
                               verbose_name=_("one device"))
    valid_from = models.DateTimeField(_("valid from"), default=dj_timezone.now)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    suspended = models.BooleanField(_("suspended"), default=False)
    schedule = models.JSONField(
        _("weekly schedule"),
        default=dict,
        blank=True,
        validators=[validate_weekly_schedule],
        help_text=_('Weekly windows in the building\'s local time, e.g. {"mon": [["07:00", "23:00"]]}; empty = always'),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), default=dj_timezone.now, editable=False)

    objects = AccessGrantQuerySet.as_manager()

    class Meta:
        verbose_name = _("access grant")
        verbose_name_plural = _("access grants")
        ordering = ["-created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(resident__isnull=False) & Q(residency__isnull=True))
                | (Q(resident__isnull=True) & Q(residency__isnull=False)),
                name="grant_exactly_one_holder",
                violation_error_message=_("A grant belongs to exactly one of: a resident, a residency."),
            ),
            models.CheckConstraint(
                condition=(Q(building__isnull=False) & Q(device__isnull=True))
                | (Q(building__isnull=True) & Q(device__isnull=False)),
                name="grant_exactly_one_target",
                violation_error_message=_("A grant covers exactly one of: a building, a device."),
            ),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gt=F("valid_from")),
                name="grant_valid_until_after_valid_from",
                violation_error_message=_("A grant must end after it starts."),
            ),
        ]

    def __str__(self):
        return _("Grant #%(id)s") % {"id": self.pk}

    @property
    def target_building(self) -> Building:
        return self.building if self.building_id else self.device.building

    @property
    def holder_resident(self) -> Resident:
        return self.resident if self.resident_id else self.residency.resident

    @property
    def holder_resident_id(self) -> int:
        return self.resident_id or self.residency.resident_id


class Vehicle(EncryptedModel):
    """A resident's car; the plate is stored normalised (access.plates) and encrypted, its blind
    index beside it (access.search)."""

    resident = models.ForeignKey(Resident, on_delete=models.CASCADE, related_name="vehicles",
                                 verbose_name=_("owner"))
    plate = EncryptedCharField(_("licence plate"), max_length=16)
    plate_index = models.CharField(
        _("plate index"),
        max_length=64, db_index=True, blank=True, editable=False,
        help_text=_("Keyed digest of the plate the admin finds the car by (access.search)"),
    )
    label = models.CharField(_("label"), max_length=64, blank=True, help_text=_("The resident's own name for the car"))
    created_at = models.DateTimeField(_("added"), default=dj_timezone.now, editable=False)

    class Meta:
        verbose_name = _("vehicle")
        verbose_name_plural = _("vehicles")
        ordering = ["id"]

    def __str__(self):
        return _("Vehicle #%(id)s") % {"id": self.pk}


class VehiclePlateToken(models.Model):
    """HMAC-SHA256 of a vehicle's normalised plate under one partner's plate-token key.

    What a partner's camera sends us and what we look a vehicle up by; never the plate itself.
    One per plate-token key the partner's decisions accept: the current one, and during a
    rotation's overlap the previous one too (`key_version`: the credentials version whose key
    made it), so a token under either key names the car in the same lookup.
    """

    vehicle = models.ForeignKey(Vehicle, on_delete=models.CASCADE, related_name="plate_tokens",
                                verbose_name=_("vehicle"))
    partner = models.ForeignKey("partners.Partner", on_delete=models.CASCADE, related_name="plate_tokens",
                                verbose_name=_("partner"))
    token = models.CharField(_("token"), max_length=64)
    key_version = models.PositiveIntegerField(_("key version"),
                                              help_text=_("Version of the partner's credentials whose key made it"))

    class Meta:
        verbose_name = _("plate token")
        verbose_name_plural = _("plate tokens")
        constraints = [
            models.UniqueConstraint(fields=["partner", "token"], name="plate_token_unique_per_partner"),
            models.UniqueConstraint(fields=["vehicle", "partner", "key_version"],
                                    name="plate_token_one_per_vehicle_partner_and_key"),
        ]

    def __str__(self):
        return _("Plate token #%(id)s") % {"id": self.pk}


class OpenRequest(models.Model):
    """One remote-open request of a resident, keyed by the app's Idempotency-Key.

    A retry with the same key returns the stored result and never calls the partner again
    (unless the first attempt ended `unavailable`: then nothing was opened and the same
    partner request id is sent again). `result`: pending | opened | denied | offline | unavailable.
    """

    class Result(models.TextChoices):
        PENDING = "pending", _("pending")
        OPENED = "opened", _("opened")
        DENIED = "denied", _("denied")
        OFFLINE = "offline", _("offline")
        UNAVAILABLE = "unavailable", _("unavailable")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                             verbose_name=_("user"))
    idempotency_key = models.CharField(_("idempotency key"), max_length=64)
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="open_requests", verbose_name=_("device"))
    partner_request_id = models.CharField(_("partner request id"), max_length=64)
    result = models.CharField(_("result"), max_length=16, choices=Result.choices, default=Result.PENDING)
    created_at = models.DateTimeField(_("created at"), default=dj_timezone.now, editable=False)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("remote open request")
        verbose_name_plural = _("remote open requests")
        ordering = ["-created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "idempotency_key"], name="open_request_key_unique_per_user"),
        ]

    def __str__(self):
        return _("Open request #%(id)s") % {"id": self.pk}


class GuestPass(EncryptedModel):
    """A resident lets a guest car through one barrier of their building for a while (or once).

    The plate is stored normalised and encrypted; `plate_token` is its HMAC under the barrier's
    partner's plate-token key (what the partner's camera sends), `previous_plate_token` the
    same under its previous key while a rotation's overlap lasts (else NULL, which no token equals).
    """

    resident = models.ForeignKey(Resident, on_delete=models.CASCADE, related_name="guest_passes",
                                 verbose_name=_("resident"))
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="guest_passes",
                               verbose_name=_("barrier"))
    plate = EncryptedCharField(_("guest's licence plate"), max_length=16)
    plate_token = models.CharField(_("plate token"), max_length=64, db_index=True)
    previous_plate_token = models.CharField(  # noqa: DJ001 - NULL matches nothing
        _("plate token under the previous key"), max_length=64, null=True, blank=True)
    label = models.CharField(_("note"), max_length=64, blank=True,
                             help_text=_("The resident's own note, e.g. \"plumber\""))
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until"))
    one_time = models.BooleanField(_("one entry only"), default=False)
    used_at = models.DateTimeField(_("used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=dj_timezone.now, editable=False)

    class Meta:
        verbose_name = _("guest pass")
        verbose_name_plural = _("guest passes")
        ordering = ["-created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_until__gt=F("valid_from")),
                name="guest_pass_valid_until_after_valid_from",
                violation_error_message=_("A guest pass must end after it starts."),
            ),
            models.CheckConstraint(
                condition=Q(used_at__isnull=True) | Q(one_time=True),
                name="guest_pass_only_one_time_passes_are_used",
                violation_error_message=_("Only a one-time pass is consumed."),
            ),
        ]

    def __str__(self):
        return _("Guest pass #%(id)s") % {"id": self.pk}

    class State(models.TextChoices):
        SCHEDULED = "scheduled", _("not started yet")
        ACTIVE = "active", _("active")
        USED = "used", _("used (one-time pass)")
        EXPIRED = "expired", _("expired")
        REVOKED = "revoked", _("revoked")

    def is_active(self, at=None) -> bool:
        at = at or dj_timezone.now()
        return (
            self.revoked_at is None and self.used_at is None and self.valid_from <= at < self.valid_until
        )

    def state(self, at=None) -> "GuestPass.State":
        """Where the pass stands at `at`: revoked, used and expired are final."""
        at = at or dj_timezone.now()
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.used_at is not None:
            return self.State.USED
        if at >= self.valid_until:
            return self.State.EXPIRED
        return self.State.SCHEDULED if at < self.valid_from else self.State.ACTIVE


class Notification(models.Model):
    """Something a partner reported that concerns a resident (e.g. a guest arrived).

    `data` holds codes and ids only, never personal data.
    """

    resident = models.ForeignKey(Resident, on_delete=models.CASCADE, related_name="notifications",
                                 verbose_name=_("resident"))
    kind = models.CharField(_("kind"), max_length=48)
    device = models.ForeignKey(Device, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                               verbose_name=_("device"))
    occurred_at = models.DateTimeField(_("occurred at"))
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=dj_timezone.now, editable=False)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["resident", "-occurred_at"], name="notification_resident_time")]

    def __str__(self):
        return _("Notification #%(id)s") % {"id": self.pk}


class SecurityAlert(models.Model):
    """An anomaly in a partner's decision traffic or residents' remote opens (access.anomalies).

    Holds counts, codes and pseudonymous refs only. `partner_suspended` says whether the breach
    suspended the partner's credentials; `resolved_at`/`resolved_by` (the security admin's
    pseudonymous ref) are set when a security admin reinstates the partner (`partner_reinstate`
    resolves every open alert of the partner).
    """

    class Kind(models.TextChoices):
        DECISION_RATE = "decision_rate", _("decision rate")
        DENY_RATIO = "deny_ratio", _("deny ratio")
        UNKNOWN_CREDENTIALS = "unknown_credentials", _("distinct unknown credentials (enumeration)")
        OPEN_BURST = "open_burst", _("burst of remote opens by one resident")

    partner = models.ForeignKey("partners.Partner", on_delete=models.PROTECT, related_name="security_alerts",
                                verbose_name=_("partner"))
    kind = models.CharField(_("kind"), max_length=24, choices=Kind.choices)
    scope = models.CharField(_("scope"), max_length=80,
                             help_text=_('"partner", "device:<ref>" or "resident:<pseudonymous ref>"'))
    observed = models.FloatField(_("observed"), help_text=_("The value that crossed the threshold"))
    threshold = models.FloatField(_("threshold"))
    window_s = models.PositiveIntegerField(_("window s"))
    partner_suspended = models.BooleanField(_("partner suspended"), default=False)
    created_at = models.DateTimeField(_("created at"), default=dj_timezone.now, editable=False)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True,
                                       help_text=_("When a security admin reinstated the partner"))
    resolved_by = models.CharField(_("resolved by"), max_length=40, blank=True,
                                   help_text=_("Pseudonymous ref of that security admin"))

    class Meta:
        verbose_name = _("security alert")
        verbose_name_plural = _("security alerts")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return _("Security alert #%(id)s: %(kind)s") % {"id": self.pk, "kind": self.get_kind_display()}

