"""Access decisions for a partner's device: a car at a barrier, a face at a door.

The hot path: decided from our own data alone (never a call out). What it reads - device,
contracts, the credential's owner, consents, grants - comes through a `core.cache.versioned`
(per process, valid while no such data has changed), so a steady-state decision costs one
version lookup and the audit insert; verdicts are never cached, only facts judged against
the clock each time. The partner's rate limit and the anomaly counters are one Redis round
trip (access.anomalies.decision_admit) between the verdict and its audit event.
"""

import datetime
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from access.anomalies import decision_admit
from access.models import AccessGrant, Device, GuestPass, Resident, VehiclePlateToken
from access.reasons import Reason
from access.schedules import schedule_allows
from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from consent.selectors import face_consent_ends, resident_id_for_subject
from core.cache.versioned import VersionedCache
from core.security.identifiers import pseudonymous_ref
from partners.models import Partner, PartnerContract

CREDENTIAL_TYPES = ("plate", "face")
access_data = VersionedCache("access")
# How far each grant check got: a deny names the check the best grant failed at.
_GRANT_FAILURES = (Reason.GRANT_SUSPENDED, Reason.GRANT_NOT_VALID, Reason.RESIDENCY_ENDED, Reason.OUTSIDE_SCHEDULE)


class DeviceNotFound(Exception):
    """The device is unknown or belongs to another partner (the API answers 404 either way)."""


class DecisionRateExceeded(Exception):
    """The partner is over its decision rate limit: nothing was decided, used up or audited."""

    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after


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


@dataclass(frozen=True)
class _Evaluation:
    reason: Reason
    resident_id: int | None = None
    grant: AccessGrant | None = None
    guest_pass: GuestPass | None = None


@dataclass(frozen=True)
class _DeviceFacts:
    device: Device  # with its building
    contracts: tuple  # (valid_from, valid_until, allows_plate, allows_face) of the partner's contracts here


def device_for_partner(*, partner_id: int, device_ref: str) -> Device | None:
    """The partner's own device by its ref (None for unknown refs and other partners' devices)."""
    return (
        Device.objects.select_related("building")
        .filter(partner_id=partner_id, partner_device_ref=device_ref)
        .first()
    )


def _device_facts(partner_id: int, device_ref: str) -> _DeviceFacts | None:
    device = device_for_partner(partner_id=partner_id, device_ref=device_ref)
    if device is None:
        return None
    contracts = tuple(
        PartnerContract.objects.filter(partner_id=partner_id, buildings__id=device.building_id)
        .values_list("valid_from", "valid_until", "allows_plate", "allows_face")
    )
    return _DeviceFacts(device, contracts)


def _contract_reason(contracts: tuple, operation: str, now) -> Reason | None:
    flags = [
        plate if operation == "plate" else face
        for valid_from, valid_until, plate, face in contracts
        if valid_from <= now and (valid_until is None or now < valid_until)
    ]
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


def _grants(resident_id: int, device: Device) -> tuple:
    return tuple(
        AccessGrant.objects.select_related("residency")
        .filter(Q(resident_id=resident_id) | Q(residency__resident_id=resident_id))
        .filter(Q(building_id=device.building_id) | Q(device_id=device.pk))
    )


def _grant_reason(grants: tuple, device: Device, now) -> tuple[Reason, AccessGrant | None]:
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


def _guest_passes(device_id: int, token: str) -> tuple:
    """Unrevoked, unused guest passes for this plate at this device (validity judged by the caller)."""
    return tuple(
        GuestPass.objects.filter(device_id=device_id, plate_token=token, revoked_at__isnull=True,
                                 used_at__isnull=True).order_by("valid_until")
    )


def _plate_owner(partner_id: int, token: str) -> tuple | None:
    return (
        VehiclePlateToken.objects.filter(partner_id=partner_id, token=token)
        .values_list("vehicle__resident_id", "vehicle__resident__suspended")
        .first()
    )


def _resident_suspended(resident_id: int) -> bool:
    return Resident.objects.filter(pk=resident_id, suspended=True).exists()


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


def _evaluate(partner_id: int, facts: _DeviceFacts, credential_type: str, token: str, now,
              version: int | None) -> _Evaluation:
    device = facts.device
    refusal = _contract_reason(facts.contracts, credential_type, now)
    if refusal is not None:
        return _Evaluation(refusal)
    guest_pass = None
    if credential_type == "plate":
        row = access_data.get(("plate", partner_id, token), version, lambda: _plate_owner(partner_id, token))
        if row is None:
            passes = access_data.get(("guest", device.pk, token), version, lambda: _guest_passes(device.pk, token))
            guest_pass = next((p for p in passes if p.valid_from <= now < p.valid_until), None)
            if guest_pass is None:
                return _Evaluation(Reason.UNKNOWN_CREDENTIAL)
            row = (guest_pass.resident_id, None)
        resident_id, suspended = row
    else:
        resident_id = access_data.get(
            ("face", partner_id, token), version,
            lambda: resident_id_for_subject(partner_id=partner_id, subject_id=token),
        )
        if resident_id is None:
            return _Evaluation(Reason.UNKNOWN_CREDENTIAL)
        consent_ends = access_data.get(
            ("consent", partner_id, resident_id), version,
            lambda: face_consent_ends(resident_id=resident_id, partner_id=partner_id),
        )
        if not any(ends > now for ends in consent_ends):
            return _Evaluation(Reason.NO_CONSENT, resident_id)
        suspended = None
    if suspended is None:
        suspended = access_data.get(("suspended", resident_id), version, lambda: _resident_suspended(resident_id))
    if suspended:
        return _Evaluation(Reason.RESIDENT_SUSPENDED, resident_id)
    if guest_pass is not None:
        return _Evaluation(Reason.GUEST_PASS, resident_id, guest_pass=guest_pass)
    grants = access_data.get(("grants", resident_id, device.pk), version, lambda: _grants(resident_id, device))
    reason, grant = _grant_reason(grants, device, now)
    return _Evaluation(reason, resident_id, grant)


def _consume(guest_pass: GuestPass, now) -> bool:
    """Use up a one-time pass; False if another decision got there first."""
    return bool(GuestPass.objects.filter(pk=guest_pass.pk, used_at__isnull=True).update(used_at=now))


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
    Before anything is used up or recorded, the decision is counted against the partner's rate
    limit and in the anomaly windows (access.anomalies.decision_admit; an unknown device too):
    over the limit, DecisionRateExceeded and nothing else happens.
    Records one `access.decision` audit event (no personal data; `subject_ref` is the
    pseudonymous ref of the resident the credential resolved to - the car's owner, the guest
    pass's host, the face's subject - so their history shows it). `observed_at` is the
    partner's clock, kept for its own logs; validity is judged on ours.
    """
    started = time.perf_counter()
    if credential_type not in CREDENTIAL_TYPES:
        raise ValueError(f"credential_type must be one of {CREDENTIAL_TYPES}")
    version = access_data.current_version()
    facts = access_data.get(("device", partner.pk, device_ref), version,
                            lambda: _device_facts(partner.pk, device_ref))
    if facts is None:
        _admit(partner.pk, device_ref, denied=True)  # unknown devices count too (and may be throttled)
        raise DeviceNotFound(device_ref)
    now = timezone.now()
    evaluation = _evaluate(partner.pk, facts, credential_type, credential_token, now, version)
    reason = evaluation.reason
    _admit(partner.pk, device_ref, denied=not reason.allows,
           unknown_credential=credential_token if reason == Reason.UNKNOWN_CREDENTIAL else None,
           resident_id=evaluation.resident_id)
    audit = {"partner": partner, "device": facts.device, "request_id": request_id, "source_ip": source_ip,
             "started": started}
    if evaluation.guest_pass is not None and evaluation.guest_pass.one_time:
        with transaction.atomic():  # the pass is used up only together with its audited decision
            if not _consume(evaluation.guest_pass, now):
                evaluation = _Evaluation(Reason.UNKNOWN_CREDENTIAL)
            return _decided(evaluation, now, **audit)
    return _decided(evaluation, now, **audit)


def _admit(partner_id: int, device_ref: str, **observed) -> None:
    """Count the decision (rate limit, anomaly windows); raise DecisionRateExceeded over the limit."""
    admission = decision_admit(partner_id=partner_id, device_ref=device_ref, **observed)
    if admission.retry_after is not None:
        raise DecisionRateExceeded(admission.retry_after)


def _decided(evaluation: _Evaluation, now, *, partner, device, request_id, source_ip, started) -> Decision:
    """The Decision, and its `access.decision` audit event (a single INSERT: atomic on its own)."""
    reason = evaluation.reason
    decision = Decision(
        decision_id=uuid.uuid4().hex, reason=reason, ttl_s=_ttl(reason, evaluation.grant, evaluation.guest_pass, now),
        device=device, resident_id=evaluation.resident_id,
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
        device_ref=device.partner_device_ref,
        reason=reason.value,
        request_id=request_id or None,
        source_ip=source_ip,
        latency_ms=(time.perf_counter() - started) * 1000,
        subject_ref=pseudonymous_ref("resident", evaluation.resident_id) if evaluation.resident_id else "",
    )
    return decision
