"""May this subject use this device now - and if not, why. The one place the access rules live.

Asked by the partner's decisions (access.services.decisions: a plate token or a face subject at
one of its devices), the resident API (access.services.opening, video, guest_passes: the
resident themself opening a door, watching a camera, inviting a guest) and the allowlist builder
(access.services.allowlist: what a partner may let through while we are unreachable). Each
caller brings its `Facts`: decisions read them through the per-process versioned cache
(`CachedFacts`), the others straight from the database. Facts are data; every verdict is judged
against the clock at the moment asked, never cached.

The rules, in order - the first that fails is the reason (access.reasons):

1. the device's partner is usable and one of its contracts, active now, covers the building
   (CONTRACT_NOT_COVERING) and allows the operation - open, video, plate or face
   (OPERATION_NOT_ALLOWED);
2. the subject is a resident: a plate token names a vehicle, else an active guest pass for this
   device; a face subject names an enrolment (UNKNOWN_CREDENTIAL); a face also needs an
   unrevoked, unexpired biometric consent for this partner (NO_CONSENT);
3. the resident is not suspended (RESIDENT_SUSPENDED);
4. one of the resident's grants covers the device (NO_GRANT) and is in force: not suspended
   (GRANT_SUSPENDED), valid now (GRANT_NOT_VALID), held personally or through a residency that
   is current on the building's local date (RESIDENCY_ENDED), its weekly schedule open now in
   the building's time zone (OUTSIDE_SCHEDULE). With several grants the first in force allows;
   if none is, the reason is the one of the grant that got furthest down that list.
   A guest pass lets its car through (GUEST_PASS) exactly when its resident could pass.

The offline allowlist carries a grant that is in force now or will be from its start (its
validity and weekly schedule travel with the entry, see `grant_listed`); guest passes are
never listed.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from access.models import AccessGrant, Device, GuestPass, Resident, VehiclePlateToken
from access.reasons import Reason
from access.schedules import schedule_allows
from consent.selectors import face_consent_ends, resident_id_for_subject
from core.cache.versioned import VersionedCache
from partners.models import PartnerContract

OPERATIONS = ("open", "video", "plate", "face")
# What a contract row is reduced to: (valid_from, valid_until, allows_open, allows_video, allows_plate, allows_face)
_CONTRACT_FIELDS = ("valid_from", "valid_until", *(f"allows_{operation}" for operation in OPERATIONS))
_FLAG = {operation: 2 + index for index, operation in enumerate(OPERATIONS)}
# How far a grant got: a denial names the check the best grant failed at (later = further).
_GRANT_FAILURES = (Reason.GRANT_SUSPENDED, Reason.GRANT_NOT_VALID, Reason.RESIDENCY_ENDED, Reason.OUTSIDE_SCHEDULE)

# What the structure a decision stands on records when it changes (devices, buildings, contracts):
# the tag of the decision's device facts (access.services.decisions) and part of every grant's.
STRUCTURE = "access"
access_data = VersionedCache(STRUCTURE)


# --- who asks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResidentSubject:
    """The resident themself (the app). `suspended`: the flag when the caller already holds the row."""

    resident_id: int
    suspended: bool | None = None


@dataclass(frozen=True)
class PlateSubject:
    """A plate token under the device's partner's key: a resident's car or a guest's."""

    token: str


@dataclass(frozen=True)
class FaceSubject:
    """A pairwise face subject id of the device's partner."""

    subject_id: str


Subject = ResidentSubject | PlateSubject | FaceSubject


@dataclass(frozen=True)
class Verdict:
    reason: Reason
    resident_id: int | None = None
    grant: AccessGrant | None = None  # the grant that allows
    guest_pass: GuestPass | None = None  # the pass that allows
    starts_later: bool = False  # GRANT_NOT_VALID because a grant has not started yet (rather than ended)

    @property
    def allows(self) -> bool:
        return self.reason.allows


# --- what the rules read --------------------------------------------------------------------


class Facts:
    """The data the rules read, loaded from the database at each call."""

    def contracts(self, *, partner_id: int, building_id: int) -> tuple:
        return tuple(
            PartnerContract.objects.filter(partner_id=partner_id, buildings__id=building_id)
            .values_list(*_CONTRACT_FIELDS)
        )

    def plate_owner(self, *, partner_id: int, token: str) -> tuple[int, bool] | None:
        """(resident id, suspended) of the vehicle the token names (under any key the partner's
        decisions accept: one row per key, access.services.plate_tokens)."""
        return (
            VehiclePlateToken.objects.filter(partner_id=partner_id, token=token)
            .values_list("vehicle__resident_id", "vehicle__resident__suspended")
            .first()
        )

    def guest_passes(self, *, device_id: int, token: str) -> tuple:
        """Unrevoked, unused guest passes for this plate - under the partner's current or, during
        a rotation's overlap, previous key - at this device (validity is judged by the rules)."""
        return tuple(
            GuestPass.objects.filter(Q(plate_token=token) | Q(previous_plate_token=token), device_id=device_id,
                                     revoked_at__isnull=True, used_at__isnull=True).order_by("valid_until")
        )

    def face_resident(self, *, partner_id: int, subject_id: str) -> int | None:
        return resident_id_for_subject(partner_id=partner_id, subject_id=subject_id)

    def consent_ends(self, *, partner_id: int, resident_id: int) -> tuple:
        return face_consent_ends(resident_id=resident_id, partner_id=partner_id)

    def resident_suspended(self, *, resident_id: int) -> bool:
        return Resident.objects.filter(pk=resident_id, suspended=True).exists()

    def grants(self, *, resident_id: int, device: Device) -> tuple:
        """The resident's grants covering the device (personal or through a residency), any state."""
        return tuple(AccessGrant.objects.held_by(resident_id).covering(device).select_related("residency"))


def _resident(resident_id) -> str:
    return f"r:{resident_id}"


def _credential(token) -> str:
    return f"t:{token}"


class CachedFacts:
    """The facts a credential needs (`Facts`' but the contracts, which the decision keeps with its
    device), kept per process while nothing they depend on has changed since `version`
    (core.cache.versioned; the tags each table's writes record: access migration 0014). Each
    fact depends on what it was looked up by and found: a credential token (`t:<token>`), a
    resident (`r:<id>`: suspension, residencies, grants, cars, consents, enrolments), and for
    grants also the structure (`access`: devices, buildings, contracts). None: caching is off,
    every call loads."""

    def __init__(self, version: int | None):
        self.version = version

    def cached(self, key: tuple, load, tags=None):
        return access_data.get(key, self.version, load, tags)

    def plate_owner(self, *, partner_id, token):
        return self.cached(("plate", partner_id, token),
                           lambda: _DATABASE.plate_owner(partner_id=partner_id, token=token),
                           lambda owner: (_credential(token),) if owner is None else (_credential(token),
                                                                                     _resident(owner[0])))

    def guest_passes(self, *, device_id, token):
        return self.cached(("guest", device_id, token),
                           lambda: _DATABASE.guest_passes(device_id=device_id, token=token), (_credential(token),))

    def face_resident(self, *, partner_id, subject_id):
        return self.cached(("face", partner_id, subject_id),
                           lambda: _DATABASE.face_resident(partner_id=partner_id, subject_id=subject_id),
                           (_credential(subject_id),))

    def consent_ends(self, *, partner_id, resident_id):
        return self.cached(("consent", partner_id, resident_id),
                           lambda: _DATABASE.consent_ends(partner_id=partner_id, resident_id=resident_id),
                           (_resident(resident_id),))

    def resident_suspended(self, *, resident_id):
        return self.cached(("suspended", resident_id),
                           lambda: _DATABASE.resident_suspended(resident_id=resident_id), (_resident(resident_id),))

    def grants(self, *, resident_id, device):
        return self.cached(("grants", resident_id, device.pk),
                           lambda: _DATABASE.grants(resident_id=resident_id, device=device),
                           (_resident(resident_id), STRUCTURE))


_DATABASE = Facts()


# --- the rules ------------------------------------------------------------------------------


def contract_refusal(contracts: Iterable[tuple], operation: str, at: datetime.datetime,
                     *, partner_usable: bool = True) -> Reason | None:
    """Rule 1 over the partner's contracts for the building (`Facts.contracts`)."""
    if not partner_usable:
        return Reason.CONTRACT_NOT_COVERING
    flag = _FLAG[operation]
    allowed = [
        contract[flag] for contract in contracts
        if contract[0] <= at and (contract[1] is None or at < contract[1])
    ]
    if not allowed:
        return Reason.CONTRACT_NOT_COVERING
    if not any(allowed):
        return Reason.OPERATION_NOT_ALLOWED
    return None


def face_subject_refusal(*, facts: Facts | CachedFacts, partner_id: int, subject_id: str,
                         at: datetime.datetime) -> tuple[Reason | None, int | None]:
    """Rule 2 for a face: (None, resident id) if the subject names a resident with an active
    biometric consent for this partner, else (UNKNOWN_CREDENTIAL or NO_CONSENT, resident id or None)."""
    resident_id = facts.face_resident(partner_id=partner_id, subject_id=subject_id)
    if resident_id is None:
        return Reason.UNKNOWN_CREDENTIAL, None
    if not any(ends > at for ends in facts.consent_ends(partner_id=partner_id, resident_id=resident_id)):
        return Reason.NO_CONSENT, resident_id
    return None, resident_id


def grant_failure(grant: AccessGrant, at: datetime.datetime, local_at: datetime.datetime,
                  *, schedule: bool = True) -> Reason | None:
    """Rule 4 for one grant: None if it is in force at `at` (`local_at`: the same moment in the
    building's time zone); `schedule=False` leaves the weekly schedule out."""
    if grant.suspended:
        return Reason.GRANT_SUSPENDED
    if grant.valid_from > at or (grant.valid_until is not None and at >= grant.valid_until):
        return Reason.GRANT_NOT_VALID
    if grant.residency_id is not None and not grant.residency.is_current(local_at.date()):
        return Reason.RESIDENCY_ENDED
    if schedule and not schedule_allows(grant.schedule, local_at):
        return Reason.OUTSIDE_SCHEDULE
    return None


def grant_listed(grant: AccessGrant, at: datetime.datetime, local_at: datetime.datetime) -> bool:
    """Whether the offline allowlist carries the grant: in force now, or from its start if that is
    later, schedule aside (the entry carries the validity and the schedule)."""
    return grant_failure(grant, max(at, grant.valid_from), local_at, schedule=False) is None


def grants_verdict(grants: Iterable[AccessGrant], device: Device, at: datetime.datetime,
                   resident_id: int | None = None) -> Verdict:
    """Rule 4 over the resident's grants covering the device."""
    grants = tuple(grants)
    if not grants:
        return Verdict(Reason.NO_GRANT, resident_id)
    local_at = at.astimezone(device.building.tz)
    failures = []
    for grant in grants:
        failure = grant_failure(grant, at, local_at)
        if failure is None:
            return Verdict(Reason.GRANTED, resident_id, grant)
        failures.append((failure, grant))
    reason = max((failure for failure, _ in failures), key=_GRANT_FAILURES.index)
    starts_later = reason == Reason.GRANT_NOT_VALID and any(
        grant.valid_from > at for failure, grant in failures if failure == reason
    )
    return Verdict(reason, resident_id, starts_later=starts_later)


def verdict(*, facts: Facts | CachedFacts, device: Device, contracts: tuple, subject: Subject, operation: str,
            at: datetime.datetime, partner_usable: bool = True) -> Verdict:
    """The verdict for `subject` at `device` (with its building) for `operation` at `at`.

    `contracts`: `facts.contracts(...)` of the device's partner and building (the caller may
    hold them already); `partner_usable`: the partner is active and not suspended.
    """
    refusal = contract_refusal(contracts, operation, at, partner_usable=partner_usable)
    if refusal is not None:
        return Verdict(refusal)
    guest_pass = None
    suspended = None
    if isinstance(subject, ResidentSubject):
        resident_id, suspended = subject.resident_id, subject.suspended
    elif isinstance(subject, PlateSubject):
        owner = facts.plate_owner(partner_id=device.partner_id, token=subject.token)
        if owner is None:
            passes = facts.guest_passes(device_id=device.pk, token=subject.token)
            guest_pass = next((p for p in passes if p.valid_from <= at < p.valid_until), None)
            if guest_pass is None:
                return Verdict(Reason.UNKNOWN_CREDENTIAL)
            resident_id = guest_pass.resident_id
        else:
            resident_id, suspended = owner
    else:
        refusal, resident_id = face_subject_refusal(facts=facts, partner_id=device.partner_id,
                                                    subject_id=subject.subject_id, at=at)
        if refusal is not None:
            return Verdict(refusal, resident_id)
    if suspended is None:
        suspended = facts.resident_suspended(resident_id=resident_id)
    if suspended:
        return Verdict(Reason.RESIDENT_SUSPENDED, resident_id)
    granted = grants_verdict(facts.grants(resident_id=resident_id, device=device), device, at, resident_id)
    if guest_pass is not None and granted.allows:
        return Verdict(Reason.GUEST_PASS, resident_id, guest_pass=guest_pass)
    return granted


def resident_verdict(*, resident: Resident, device: Device, operation: str,
                     at: datetime.datetime | None = None) -> Verdict:
    """The verdict for the resident themself (the app) on one of their devices, from the database."""
    at = at or timezone.now()
    facts = Facts()
    return verdict(
        facts=facts, device=device, contracts=facts.contracts(partner_id=device.partner_id,
                                                              building_id=device.building_id),
        subject=ResidentSubject(resident.pk, resident.suspended), operation=operation, at=at,
        partner_usable=device.partner.is_usable,
    )
