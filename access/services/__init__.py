"""Writes of the access app: companies, buildings, residents, devices, grants, vehicles.

Each function takes keyword arguments only, validates with full_clean (plus the cross-row
checks named in its docstring), runs in one transaction and records an audit event in it.
`actor` is the Django user acting (staff or the resident), None for the system.
"""

import datetime
import secrets

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from access.models import (
    AccessGrant,
    Building,
    Device,
    ManagementCompany,
    Residency,
    Resident,
    StaffMembership,
    Unit,
    Vehicle,
    VehiclePlateToken,
)
from access.plates import InvalidPlate, normalise_plate, plate_token
from access.selectors import resident_building_ids
from access.services.allowlist import (
    allowlist_resident_changed,
    grant_building_ids,
    resident_credentials,
    resident_grant_building_ids,
    vehicle_credentials,
)
from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from core.security.identifiers import pseudonymous_ref, user_ref
from core.security.staff_policy import StaffChange, check_change
from partners.models import PartnerCredentials
from partners.selectors import partners_covering_building_ids


def _actor(actor) -> dict:
    if actor is None:
        return {"actor_kind": ActorKind.SYSTEM, "actor_ref": ""}
    kind = ActorKind.STAFF if actor.is_staff else ActorKind.RESIDENT
    return {"actor_kind": kind, "actor_ref": user_ref(actor)}


def _audit(*, actor, object_type: str, pk: int, reason: str, company_id=None, building_id=None,
           action: Action = Action.ADMIN_CHANGE, object_ref: str | None = None):
    record(
        action=action,
        outcome=Outcome.SUCCESS,
        object_type=object_type,
        object_ref=object_ref or f"{object_type}:{pk}",
        company_id=company_id,
        building_id=building_id,
        reason=reason,
        **_actor(actor),
    )


def _save(obj):
    obj.full_clean()
    obj.save()
    return obj


# --- companies, staff, buildings, units ------------------------------------------------------


@transaction.atomic
def company_create(*, name: str, actor=None) -> ManagementCompany:
    """Create a management company. Records admin.change."""
    company = _save(ManagementCompany(name=name))
    _audit(actor=actor, object_type="company", pk=company.pk, reason="created", company_id=company.pk)
    return company


@transaction.atomic
def staff_membership_create(*, user, company: ManagementCompany, actor=None) -> StaffMembership:
    """Let a staff user work for `company` (the admin then shows its rows). Checks: the staff
    policy (nobody adds themselves; superusers' memberships by superusers), the user is staff.
    Records admin.change."""
    check_change(actor=actor, target=user, change=StaffChange.MEMBERSHIP)
    if not user.is_staff:
        raise ValidationError({"user": "Only staff users can belong to a management company."})
    membership = _save(StaffMembership(user=user, company=company))
    _audit(actor=actor, object_type="staff_membership", pk=membership.pk, reason="created", company_id=company.pk)
    return membership


@transaction.atomic
def staff_membership_delete(*, membership: StaffMembership, actor=None) -> None:
    """Take a staff user off a company. Checks: the staff policy (nobody removes themselves).
    Records admin.change."""
    check_change(actor=actor, target=membership.user, change=StaffChange.MEMBERSHIP)
    _audit(actor=actor, object_type="staff_membership", pk=membership.pk, reason="deleted",
           company_id=membership.company_id)
    membership.delete()


@transaction.atomic
def building_create(
    *, company: ManagementCompany, name: str, address: str, timezone: str = "Europe/Moscow", actor=None
) -> Building:
    """Create a building of `company`. Checks: IANA time zone, unique name. Records admin.change."""
    building = _save(Building(company=company, name=name, address=address, timezone=timezone))
    _audit(
        actor=actor, object_type="building", pk=building.pk, reason="created",
        company_id=company.pk, building_id=building.pk,
    )
    return building


@transaction.atomic
def unit_create(*, building: Building, number: str, actor=None) -> Unit:
    """Create a flat in `building`. Checks: number unique in the building. Records admin.change."""
    unit = _save(Unit(building=building, number=number))
    _audit(
        actor=actor, object_type="unit", pk=unit.pk, reason="created",
        company_id=building.company_id, building_id=building.pk,
    )
    return unit


# --- residents and residencies ---------------------------------------------------------------


@transaction.atomic
def resident_create(
    *,
    company: ManagementCompany,
    full_name: str,
    phone: str = "",
    email: str = "",
    user=None,
    username: str | None = None,
    password: str | None = None,
    actor=None,
) -> Resident:
    """Register a resident of `company`, with a new app user unless `user` is given.

    The Django user carries no personal data (no name, no e-mail: those columns are not
    encrypted); its username is `username` or a random "r-..." handle. Checks: model
    validation (lengths). Records admin.change with a pseudonymous ref.
    """
    if user is None:
        User = get_user_model()
        user = User(username=username or f"r-{secrets.token_hex(6)}")
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.full_clean()
        user.save()
    resident = _save(Resident(user=user, company=company, full_name=full_name, phone=phone, email=email))
    _audit(
        actor=actor, object_type="resident", pk=resident.pk, reason="created", company_id=company.pk,
        object_ref=pseudonymous_ref("resident", resident.pk),
    )
    return resident


_RESIDENT_FIELDS = ("full_name", "phone", "email", "suspended")


@transaction.atomic
def resident_update(*, resident: Resident, actor=None, **changes) -> Resident:
    """Change a resident's name, phone, e-mail or suspension. Records admin.change; a change of
    suspension patches the partners' allowlists (access.services.allowlist)."""
    unknown = set(changes) - set(_RESIDENT_FIELDS)
    if unknown:
        raise TypeError(f"resident_update() cannot change {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        setattr(resident, name, value)
    _save(resident)
    reason = "suspended" if changes.get("suspended") else "updated"
    _audit(
        actor=actor, object_type="resident", pk=resident.pk, reason=reason, company_id=resident.company_id,
        object_ref=pseudonymous_ref("resident", resident.pk),
    )
    if "suspended" in changes:
        allowlist_resident_changed(resident_id=resident.pk)
    return resident


@transaction.atomic
def resident_delete(*, resident: Resident, actor=None) -> None:
    """Erase a resident (the admin's delete): their row and, with it, their flats, grants, cars and
    plate tokens, guest passes and notifications; their app account and its OAuth2 tokens (unless
    it is also a staff account: then only the link goes). Before the rows go, in the same
    transaction: every open consent is revoked with reason "deleted" (face deletions queued to the
    partners, consent.subject_forget) and every site whose allowlist may list them gets a patch
    removing all their plate tokens and face subjects. Consents, deletion receipts and audit events
    stay: they are evidence and name the resident by id or pseudonymous ref only. Records
    admin.change "deleted"."""
    from consent.services import subject_forget

    resident = Resident.objects.select_for_update().select_related("user").get(pk=resident.pk)
    resident_id, user = resident.pk, resident.user
    credentials = resident_credentials(resident_id=resident_id)
    sites = resident_grant_building_ids(resident_id=resident_id) | set(
        resident.residencies.values_list("unit__building_id", flat=True)
    )
    _audit(
        actor=actor, object_type="resident", pk=resident_id, reason="deleted", company_id=resident.company_id,
        object_ref=pseudonymous_ref("resident", resident_id),
    )
    resident.delete()
    # after the rows: each revocation's own allowlist patch then finds no site of theirs, and the one
    # patch below removes every credential captured above
    subject_forget(resident_id=resident_id, reason="deleted", actor=actor)
    allowlist_resident_changed(resident_id=resident_id, removed=credentials, building_ids=sites)
    if not user.is_staff:
        user.delete()


@transaction.atomic
def residency_create(
    *, resident: Resident, unit: Unit, kind: str, valid_from=None, valid_until=None, actor=None
) -> Residency:
    """Link a resident to a flat. Checks: the flat's building belongs to the resident's company,
    dates in order (database constraint). Records admin.change. Vehicle plate tokens are
    recomputed, since the resident may now be in a building another partner covers."""
    if unit.building.company_id != resident.company_id:
        raise ValidationError({"unit": "The flat belongs to another management company."})
    residency = _save(
        Residency(
            resident=resident, unit=unit, kind=kind,
            valid_from=valid_from or timezone.localdate(), valid_until=valid_until,
        )
    )
    _audit(
        actor=actor, object_type="residency", pk=residency.pk, reason="created",
        company_id=resident.company_id, building_id=unit.building_id,
    )
    _refresh_resident_tokens(resident)
    return residency


@transaction.atomic
def residency_end(*, residency: Residency, on=None, actor=None) -> Residency:
    """Move-out: end the residency on `on` (default today) and end, at the same moment, every
    grant held through it. Checks: the end is after the start. Records admin.change; patches the
    allowlists of the residency's sites."""
    on = on or timezone.localdate()
    residency = Residency.objects.select_for_update().get(pk=residency.pk)
    if residency.valid_until is not None and residency.valid_until <= on:
        return residency  # already ended; move-out is idempotent
    credentials_before = resident_credentials(resident_id=residency.resident_id)
    residency.valid_until = on
    _save(residency)
    ends_at = timezone.now() if on <= timezone.localdate() else _start_of_day(on)
    for grant in residency.grants.all():
        if grant.valid_until is None or grant.valid_until > ends_at:
            grant.valid_until = max(ends_at, grant.valid_from + datetime.timedelta(microseconds=1))
            grant.save(update_fields=["valid_until"])
    _audit(
        actor=actor, object_type="residency", pk=residency.pk, reason="ended",
        company_id=residency.resident.company_id, building_id=residency.unit.building_id,
    )
    _refresh_resident_tokens(residency.resident)
    sites = {residency.unit.building_id} | grant_building_ids(residency.grants.all())
    allowlist_resident_changed(resident_id=residency.resident_id, removed=credentials_before, building_ids=sites)
    # consent (issue 7): a move-out revokes the resident's face consents for that building in
    # this same transaction (face paths refused at once, deletion sent to the partner via the outbox).
    if on <= timezone.localdate():
        from consent.services import subject_forget

        subject_forget(resident_id=residency.resident_id, reason="move_out", building_id=residency.unit.building_id,
                       actor=actor)
    return residency


def _start_of_day(day):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


# --- devices ---------------------------------------------------------------------------------


@transaction.atomic
def device_create(
    *, building: Building, kind: str, name: str, partner, partner_device_ref: str, actor=None
) -> Device:
    """Attach a partner's device to a building. Checks: device ref unique per partner.
    Records admin.change."""
    device = _save(
        Device(building=building, kind=kind, name=name, partner=partner, partner_device_ref=partner_device_ref)
    )
    _audit(
        actor=actor, object_type="device", pk=device.pk, reason="created",
        company_id=building.company_id, building_id=building.pk,
    )
    return device


def device_set_online(*, device: Device, online: bool, seen_at=None) -> Device:
    """Record a device's online state as reported by its partner (no audit event: telemetry)."""
    device.online = online
    device.last_seen_at = seen_at or timezone.now()
    device.save(update_fields=["online", "last_seen_at"])
    return device


# --- grants ----------------------------------------------------------------------------------


@transaction.atomic
def grant_create(
    *,
    resident: Resident | None = None,
    residency: Residency | None = None,
    building: Building | None = None,
    device: Device | None = None,
    valid_from=None,
    valid_until=None,
    schedule: dict | None = None,
    actor=None,
) -> AccessGrant:
    """Grant a resident (or a residency) access to a building (or one device).

    Checks: exactly one holder and one target (database constraints), dates in order, the
    weekly schedule's shape, and that the target is in the holder's management company.
    Records admin.change; patches the target site's allowlists.
    """
    holder = resident if resident is not None else (residency.resident if residency is not None else None)
    target = building if building is not None else (device.building if device is not None else None)
    if holder is not None and target is not None and holder.company_id != target.company_id:
        raise ValidationError("The target belongs to another management company than the resident.")
    grant = _save(
        AccessGrant(
            resident=resident, residency=residency, building=building, device=device,
            valid_from=valid_from or timezone.now(), valid_until=valid_until,
            schedule=schedule or {}, created_by=actor,
        )
    )
    _audit(
        actor=actor, object_type="grant", pk=grant.pk, reason="created",
        company_id=target.company_id, building_id=target.pk,
    )
    allowlist_resident_changed(resident_id=grant.holder_resident.pk, building_ids={target.pk})
    return grant


@transaction.atomic
def grant_suspend(*, grant: AccessGrant, actor=None) -> AccessGrant:
    """Suspend a grant (it stays, denies until resumed). Records admin.change; patches the
    target site's allowlists."""
    return _grant_set_suspended(grant, True, actor)


@transaction.atomic
def grant_resume(*, grant: AccessGrant, actor=None) -> AccessGrant:
    """Lift a grant's suspension. Records admin.change; patches the target site's allowlists."""
    return _grant_set_suspended(grant, False, actor)


def _grant_set_suspended(grant, suspended, actor):
    grant.suspended = suspended
    grant.save(update_fields=["suspended"])
    target = grant.target_building
    _audit(
        actor=actor, object_type="grant", pk=grant.pk, reason="suspended" if suspended else "resumed",
        company_id=target.company_id, building_id=target.pk,
    )
    allowlist_resident_changed(resident_id=grant.holder_resident.pk, building_ids={target.pk})
    return grant


@transaction.atomic
def grant_delete(*, grant: AccessGrant, actor=None) -> None:
    """Delete a grant. Records admin.change; patches the target site's allowlists."""
    target, holder_id, pk = grant.target_building, grant.holder_resident.pk, grant.pk
    grant.delete()
    _audit(
        actor=actor, object_type="grant", pk=pk, reason="deleted", company_id=target.company_id,
        building_id=target.pk,
    )
    allowlist_resident_changed(resident_id=holder_id, building_ids={target.pk})


# --- vehicles and plate tokens ---------------------------------------------------------------


def _plate_error(exc: InvalidPlate) -> ValidationError:
    return ValidationError({"plate": ValidationError(exc.message, code=exc.code)})


def _normalised(plate: str) -> str:
    try:
        return normalise_plate(plate)
    except InvalidPlate as exc:
        raise _plate_error(exc) from None


@transaction.atomic
def vehicle_create(*, resident: Resident, plate: str, label: str = "", actor=None) -> Vehicle:
    """Register a resident's car. The plate is normalised (access.plates) and encrypted.

    Checks: a valid Russian plate (ValidationError code from InvalidPlate); no other vehicle
    known to the same partner has the same plate (code "plate_taken"). Computes one plate token
    per partner with an active plate contract covering the resident's buildings. Records
    resident.vehicle_create; patches the allowlists of those partners' sites.
    """
    vehicle = _save(Vehicle(resident=resident, plate=_normalised(plate), label=label))
    _refresh_vehicle_tokens(vehicle)
    _audit_vehicle(vehicle, actor, Action.RESIDENT_VEHICLE_CREATE, "created")
    _vehicle_allowlists_changed(vehicle.resident_id, set(), vehicle_credentials(vehicle_id=vehicle.pk))
    return vehicle


@transaction.atomic
def vehicle_update(*, vehicle: Vehicle, plate: str | None = None, label: str | None = None, actor=None) -> Vehicle:
    """Change a car's plate and/or label; plate tokens are recomputed. Same checks as
    vehicle_create. Records resident.vehicle_update; a new plate patches the allowlists (the old
    token removed, the new one added)."""
    before = vehicle_credentials(vehicle_id=vehicle.pk)
    if plate is not None:
        vehicle.plate = _normalised(plate)
    if label is not None:
        vehicle.label = label
    _save(vehicle)
    _refresh_vehicle_tokens(vehicle)
    _audit_vehicle(vehicle, actor, Action.RESIDENT_VEHICLE_UPDATE, "updated")
    after = vehicle_credentials(vehicle_id=vehicle.pk)
    if after != before:
        _vehicle_allowlists_changed(vehicle.resident_id, before, after)
    return vehicle


@transaction.atomic
def vehicle_delete(*, vehicle: Vehicle, actor=None) -> None:
    """Remove a car and its plate tokens. Records resident.vehicle_delete; patches the
    allowlists (its tokens removed)."""
    before = vehicle_credentials(vehicle_id=vehicle.pk)
    _audit_vehicle(vehicle, actor, Action.RESIDENT_VEHICLE_DELETE, "deleted")
    resident_id = vehicle.resident_id
    vehicle.delete()
    _vehicle_allowlists_changed(resident_id, before, set())


def _vehicle_allowlists_changed(resident_id: int, before: set, after: set) -> None:
    # Only the partners that knew or now know the car: others' allowlists are unaffected.
    partner_ids = {credential.partner_id for credential in before | after}
    if partner_ids:
        allowlist_resident_changed(resident_id=resident_id, removed=before, partner_ids=partner_ids)


def _audit_vehicle(vehicle, actor, action, reason):
    _audit(
        actor=actor, object_type="vehicle", pk=vehicle.pk, reason=reason, action=action,
        company_id=vehicle.resident.company_id,
    )


def _refresh_vehicle_tokens(vehicle: Vehicle, *, keys: dict[int, bytes] | None = None,
                            partner_ids: set[int] | None = None) -> None:
    """Make the vehicle's tokens exactly one per partner with an active plate contract over one
    of the resident's buildings and current credentials."""
    if partner_ids is None:
        building_ids = resident_building_ids(resident=vehicle.resident)
        partner_ids = set(partners_covering_building_ids(building_ids=building_ids, operation="plate"))
    if keys is None:
        keys = _plate_keys(partner_ids)
    wanted = {pid: plate_token(key=keys[pid], plate=vehicle.plate) for pid in partner_ids if pid in keys}
    VehiclePlateToken.objects.filter(vehicle=vehicle).exclude(partner_id__in=list(wanted)).delete()
    for partner_id, token in wanted.items():
        try:
            with transaction.atomic():
                VehiclePlateToken.objects.update_or_create(
                    vehicle=vehicle, partner_id=partner_id, defaults={"token": token}
                )
        except IntegrityError:
            raise ValidationError(
                {"plate": ValidationError("This plate is already registered to another vehicle.", code="plate_taken")}
            ) from None


def _plate_keys(partner_ids) -> dict[int, bytes]:
    return {
        credentials.partner_id: credentials.plate_token_key_bytes()
        for credentials in PartnerCredentials.objects.current().filter(partner_id__in=list(partner_ids))
    }


def _refresh_resident_tokens(resident: Resident) -> None:
    for vehicle in resident.vehicles.all():
        _refresh_vehicle_tokens(vehicle)


def plate_tokens_rebuild(*, partner_id: int) -> int:
    """Recompute every vehicle's token for one partner (after its contracts or plate key
    changed). A vehicle whose plate now collides for this partner loses that token rather than
    failing the whole rebuild. Returns how many tokens the partner has afterwards."""
    keys = _plate_keys([partner_id])
    VehiclePlateToken.objects.filter(partner_id=partner_id).delete()
    if partner_id not in keys:
        return 0
    key = keys[partner_id]
    covered = partners_covering_building_ids(
        building_ids=Building.objects.values_list("id", flat=True), operation="plate"
    ).get(partner_id, set())
    if not covered:
        return 0
    created = 0
    vehicles = Vehicle.objects.select_related("resident").filter(resident__company__buildings__id__in=covered)
    for vehicle in vehicles.distinct().iterator():
        if not resident_building_ids(resident=vehicle.resident) & covered:
            continue
        token = plate_token(key=key, plate=vehicle.plate)
        with transaction.atomic():
            _, was_created = VehiclePlateToken.objects.get_or_create(
                partner_id=partner_id, token=token, defaults={"vehicle": vehicle}
            )
        created += was_created
    return created
