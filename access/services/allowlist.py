"""Allowlist sync: what a partner's barriers and doors may let through when we are unreachable.

Per site (= building) and partner: one entry per credential - the plate tokens of residents'
vehicles under this partner's key (if the contract allows plates) and the face subject ids
of residents with an active enrolment and consent (if it allows faces) - with the partner's
device refs the resident's grants cover and the validity of the grant. Suspended residents
and grants, grants of ended residencies and expired grants are left out; weekly schedules are
not expressible in the partner's format, so a scheduled grant is included for its whole
validity (the online decision still applies the schedule).

Pushed in full (`allowlist_put`, nightly by beat and on demand) through the outbox, so it
reaches the partner at least once and in order per site. Versions are milliseconds since the
epoch: always newer than the last push.
"""

import time

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from access.models import AccessGrant, Device, Resident, VehiclePlateToken
from consent.models import Consent, FaceEnrolment
from partners.models import PartnerContract
from partners.outbox.services import outbox_enqueue


def site_ref(building_id: int) -> str:
    return f"building-{building_id}"


def _merge(entries: dict, key: tuple[str, str], device_refs: set[str], grant: AccessGrant) -> None:
    entry = entries.setdefault(key, {"type": key[0], "token": key[1], "device_refs": set(),
                                     "valid_from": grant.valid_from, "valid_until": grant.valid_until})
    entry["device_refs"] |= device_refs
    entry["valid_from"] = min(entry["valid_from"], grant.valid_from)
    if entry["valid_until"] is not None:
        entry["valid_until"] = None if grant.valid_until is None else max(entry["valid_until"], grant.valid_until)


def allowlist_entries(*, partner_id: int, building_id: int, at=None) -> list[dict]:
    """The full allowlist of `partner_id` for one building, as the partner API expects it."""
    at = at or timezone.now()
    flags = list(PartnerContract.objects.active(at).filter(partner_id=partner_id, buildings__id=building_id)
                 .values_list("allows_plate", "allows_face"))
    plates, faces = any(f[0] for f in flags), any(f[1] for f in flags)
    devices = dict(Device.objects.filter(partner_id=partner_id, building_id=building_id)
                   .values_list("pk", "partner_device_ref"))
    if not devices or not (plates or faces):
        return []
    today = timezone.localdate(at)
    grants = (
        AccessGrant.objects.select_related("residency", "resident")
        .filter(Q(building_id=building_id) | Q(device_id__in=devices), suspended=False)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=at))
    )
    by_resident: dict[int, list[tuple[AccessGrant, set[str]]]] = {}
    for grant in grants:
        if grant.residency_id is not None and not grant.residency.is_current(today):
            continue
        resident_id = grant.resident_id or grant.residency.resident_id
        refs = set(devices.values()) if grant.building_id else {devices[grant.device_id]}
        by_resident.setdefault(resident_id, []).append((grant, refs))
    suspended = set(Resident.objects.filter(pk__in=by_resident, suspended=True).values_list("pk", flat=True))
    credentials: dict[int, list[tuple[str, str]]] = {resident_id: [] for resident_id in by_resident}
    if plates:
        for resident_id, token in VehiclePlateToken.objects.filter(
            partner_id=partner_id, vehicle__resident_id__in=by_resident
        ).values_list("vehicle__resident_id", "token"):
            credentials[resident_id].append(("plate", token))
    if faces:
        consenting = set(Consent.objects.active(at).filter(partner_id=partner_id, resident_id__in=by_resident)
                         .values_list("resident_id", flat=True))
        for resident_id, subject in FaceEnrolment.objects.filter(
            partner_id=partner_id, resident_id__in=consenting, status__in=["delivered", "active"]
        ).values_list("resident_id", "subject_id"):
            credentials[resident_id].append(("face", subject))
    entries: dict = {}
    for resident_id, held in by_resident.items():
        if resident_id in suspended:
            continue
        for key in credentials[resident_id]:
            for grant, refs in held:
                _merge(entries, key, refs, grant)
    return [
        {**entry, "device_refs": sorted(entry["device_refs"]), "valid_from": entry["valid_from"].isoformat(),
         "valid_until": entry["valid_until"].isoformat() if entry["valid_until"] else None}
        for entry in sorted(entries.values(), key=lambda e: (e["type"], e["token"]))
    ]


@transaction.atomic
def allowlist_push_full(*, partner_id: int, building_id: int) -> int:
    """Enqueue the full allowlist of one site for the partner (outbox `allowlist_put`, ordered per
    site). Returns the number of entries. The delivery records the `partner.allowlist_full` call."""
    entries = allowlist_entries(partner_id=partner_id, building_id=building_id)
    ref = site_ref(building_id)
    version = int(time.time() * 1000)
    outbox_enqueue(partner_id=partner_id, operation="allowlist_put", ordering_key=f"allowlist:{ref}",
                   payload={"site_ref": ref, "version": version, "entries": entries},
                   idempotency_key=f"allowlist-{partner_id}-{building_id}-{version}")
    return len(entries)


def allowlist_push_all() -> int:
    """Nightly: the full allowlist of every (usable partner, building) pair under an active contract."""
    pairs = set(
        PartnerContract.objects.active().filter(partner__active=True, partner__suspended_at__isnull=True)
        .values_list("partner_id", "buildings__id")
    )
    pushed = 0
    for partner_id, building_id in sorted(p for p in pairs if p[1] is not None):
        allowlist_push_full(partner_id=partner_id, building_id=building_id)
        pushed += 1
    return pushed
