"""Access decisions for a partner's device: a car at a barrier, a face at a door.

The hot path: decided from our own data alone (never a call out), in a handful of queries.
"""

import datetime
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from access.models import AccessGrant, Device, GuestPass, Resident, VehiclePlateToken
from access.reasons import Reason
from access.schedules import schedule_allows
from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from consent.selectors import active_face_consent_exists, resident_id_for_subject
from partners.models import Partner, PartnerContract

CREDENTIAL_TYPES = ("plate", "face")
# How far each grant check got: a deny names the check the best grant failed at.
_GRANT_FAILURES = (Reason.GRANT_SUSPENDED, Reason.GRANT_NOT_VALID, Reason.RESIDENCY_ENDED, Reason.OUTSIDE_SCHEDULE)


class DeviceNotFound(Exception):
    """The device is unknown or belongs to another partner (the API answers 404 either way)."""


@dataclass(frozen=True)
class Decision:
    decision_id: str
    reason: Reason
    ttl_s: int
    device: Device
    resident_id: int | None = None

    @property
    def decision(self) -> str:
        return "allow" if self.reason.allows else "deny"


def device_for_partner(*, partner_id: int, device_ref: str) -> Device | None:
    """The partner's own device by its ref (None for unknown refs and other partners' devices)."""
    return (
        Device.objects.select_related("building")
        .filter(partner_id=partner_id, partner_device_ref=device_ref)
        .first()
    )


def _contract_reason(partner_id: int, building_id: int, operation: str, now) -> Reason | None:
    flags = list(
        PartnerContract.objects.active(now)
        .filter(partner_id=partner_id, buildings__id=building_id)
        .values_list(f"allows_{operation}", flat=True)
    )
    if not flags:
        return Reason.CONTRACT_NOT_COVERING
    if not any(flags):
        return Reason.OPERATION_NOT_ALLOWED
    return None


def _grant_failure(grant: AccessGrant, now, local_now) -> Reason | None:
    if grant.suspended:
        return Reason.GRANT_SUSPENDED
    if grant.valid_from > now or (grant.valid_until is not None and now >= grant.valid_until):
        return Reason.GRANT_NOT_VALID
    if grant.residency_id is not None and not grant.residency.is_current(local_now.date()):
        return Reason.RESIDENCY_ENDED
    if not schedule_allows(grant.schedule, local_now):
        return Reason.OUTSIDE_SCHEDULE
    return None


def _grant_reason(resident_id: int, device: Device, now) -> tuple[Reason, AccessGrant | None]:
    grants = list(
        AccessGrant.objects.select_related("residency")
        .filter(Q(resident_id=resident_id) | Q(residency__resident_id=resident_id))
        .filter(Q(building_id=device.building_id) | Q(device_id=device.pk))
    )
    if not grants:
        return Reason.NO_GRANT, None
    local_now = now.astimezone(device.building.tz)
    failures = []
    for grant in grants:
        failure = _grant_failure(grant, now, local_now)
        if failure is None:
            return Reason.GRANTED, grant
        failures.append(failure)
    return max(failures, key=_GRANT_FAILURES.index), None


def _guest_pass(device: Device, token: str, now) -> GuestPass | None:
    """An active guest pass for this plate at this device; a one-time pass is consumed (atomically)."""
    guest_pass = (
        GuestPass.objects.filter(
            device=device, plate_token=token, revoked_at__isnull=True, used_at__isnull=True,
            valid_from__lte=now, valid_until__gt=now,
        )
        .order_by("valid_until")
        .first()
    )
    if guest_pass is not None and guest_pass.one_time:
        consumed = GuestPass.objects.filter(pk=guest_pass.pk, used_at__isnull=True).update(used_at=now)
        if not consumed:
            return None
    return guest_pass


def _ttl(reason: Reason, grant: AccessGrant | None, guest_pass: GuestPass | None, now) -> int:
    if not reason.allows:
        return getattr(settings, "ACCESS_DECISION_DENY_TTL_S", 10)
    ttl = getattr(settings, "ACCESS_DECISION_ALLOW_TTL_S", 60)
    ends = grant.valid_until if grant is not None else None
    if guest_pass is not None:
        ttl, ends = 0 if guest_pass.one_time else ttl, guest_pass.valid_until
    if ends is not None:
        ttl = min(ttl, max(int((ends - now).total_seconds()), 0))
    return ttl


def _evaluate(partner_id: int, device: Device, credential_type: str, token: str, now):
    """-> (reason, resident_id, grant, guest_pass)."""
    operation = "plate" if credential_type == "plate" else "face"
    refusal = _contract_reason(partner_id, device.building_id, operation, now)
    if refusal is not None:
        return refusal, None, None, None
    guest_pass = None
    if credential_type == "plate":
        row = (
            VehiclePlateToken.objects.filter(partner_id=partner_id, token=token)
            .values_list("vehicle__resident_id", "vehicle__resident__suspended")
            .first()
        )
        if row is None:
            guest_pass = _guest_pass(device, token, now)
            if guest_pass is None:
                return Reason.UNKNOWN_CREDENTIAL, None, None, None
            row = (guest_pass.resident_id, None)
        resident_id, suspended = row
    else:
        resident_id, suspended = resident_id_for_subject(partner_id=partner_id, subject_id=token), None
        if resident_id is None:
            return Reason.UNKNOWN_CREDENTIAL, None, None, None
        if not active_face_consent_exists(resident_id=resident_id, partner_id=partner_id):
            return Reason.NO_CONSENT, resident_id, None, None
    if suspended is None:
        suspended = Resident.objects.filter(pk=resident_id, suspended=True).exists()
    if suspended:
        return Reason.RESIDENT_SUSPENDED, resident_id, None, None
    if guest_pass is not None:
        return Reason.GUEST_PASS, resident_id, None, guest_pass
    reason, grant = _grant_reason(resident_id, device, now)
    return reason, resident_id, grant, None


@transaction.atomic
def access_decide(
    *,
    partner: Partner,
    device_ref: str,
    credential_type: str,
    credential_token: str,
    request_id: str = "",
    observed_at: datetime.datetime | None = None,
    source_ip: str | None = None,
) -> Decision:
    """Decide whether `credential` may pass `device_ref` of `partner` now, from local data only.

    Checks, in order: the device is the partner's (else DeviceNotFound); an active contract of
    this partner covers the building and allows plate/face recognition; the credential maps to
    a resident (plate token -> vehicle, else an active guest pass for this device - a one-time
    pass is consumed; face subject -> enrolment, plus an active face consent); the resident is
    not suspended; one of their grants covers the device, is not suspended, is valid, its
    residency is current and its schedule (building time zone) allows now.
    Records one `access.decision` audit event (no personal data). `observed_at` is the
    partner's clock, kept for its own logs; validity is judged on ours.
    """
    started = time.perf_counter()
    if credential_type not in CREDENTIAL_TYPES:
        raise ValueError(f"credential_type must be one of {CREDENTIAL_TYPES}")
    device = device_for_partner(partner_id=partner.pk, device_ref=device_ref)
    if device is None:
        raise DeviceNotFound(device_ref)
    now = timezone.now()
    reason, resident_id, grant, guest_pass = _evaluate(partner.pk, device, credential_type, credential_token, now)
    decision = Decision(
        decision_id=uuid.uuid4().hex, reason=reason, ttl_s=_ttl(reason, grant, guest_pass, now),
        device=device, resident_id=resident_id,
    )
    record(
        action=Action.ACCESS_DECISION,
        outcome=Outcome.SUCCESS if reason.allows else Outcome.DENIED,
        actor_kind=ActorKind.PARTNER,
        actor_ref=f"partner:{partner.pk}",
        object_type="access_decision",
        object_ref=f"decision:{decision.decision_id}",
        partner_id=partner.pk,
        company_id=device.building.company_id,
        building_id=device.building_id,
        device_ref=device_ref,
        reason=reason.value,
        request_id=request_id or None,
        source_ip=source_ip,
        latency_ms=(time.perf_counter() - started) * 1000,
    )
    return decision
