"""Allowlist sync: what a partner's barriers and doors may let through when we are unreachable.

Per site (= building) and partner: one entry per credential - the plate tokens of residents'
vehicles under this partner's key (if the contract allows plates; during a rotation's overlap
under its previous key as well, an entry each, so a barrier on either key lets the car in) and
the face subject ids of residents with a delivered enrolment and an active consent (if it allows
faces) - with the partner's device refs the resident's grants cover, the validity of the grants
and, when every one of them has a weekly schedule, their windows (`schedule`, in the site's
`timezone`). Which
grants are listed is access.policy's rule (`grant_listed`): suspended residents and grants,
grants of ended residencies and expired grants are left out. Guest passes are never listed.

Two kinds of outbox message, both with the ordering key ``allowlist:{site_ref}`` so they reach
the partner in the order they were written:

- ``allowlist_put`` - the full list (`allowlist_push_full`: nightly by beat for every site, and
  for a partner's sites when its contracts or credentials change);
- ``allowlist_patch`` ``{upserts, removals}`` - one resident's part of the list after a change
  (`allowlist_resident_changed`: grants, move-out, suspension, vehicles, consent, enrolment);
  inside `allowlist_batch()` (a bulk import), the parts of every resident the batch changed, one
  patch per (partner, site) when the batch ends.

Versions are milliseconds since the epoch and strictly increase per (partner, site) - a
transaction-scoped advisory lock serialises writers, and a change within the same millisecond
as the previous message gets that version + 1 - so the partner refuses a replayed or older
message (409, reported as ``superseded``) and never goes back. Every allowlist message is
followed by an ``allowlist.changed`` event ``{site_ref, version}`` (partners.outbound_events).
"""

import contextlib
import hashlib
import time
from collections.abc import Collection, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from access.models import AccessGrant, Building, Device, Resident, VehiclePlateToken
from access.policy import Facts, contract_refusal, grant_listed
from access.schedules import DAYS
from consent.models import Consent, FaceEnrolment
from partners.models import OutboxMessage, PartnerContract
from partners.outbound_events import partner_event_enqueue
from partners.outbox.services import outbox_enqueue

LISTED_ENROLMENTS = (FaceEnrolment.Status.DELIVERED, FaceEnrolment.Status.ACTIVE)
ALLOWLIST_OPERATIONS = ("allowlist_put", "allowlist_patch")


@dataclass(frozen=True, order=True)
class Credential:
    """A credential as one partner knows it: a plate token under its key or its face subject id."""

    partner_id: int
    type: str  # "plate" | "face"
    token: str


def site_ref(building_id: int) -> str:
    return f"building-{building_id}"


def _merge(entries: dict, key: tuple[str, str], device_refs: set[str], grant: AccessGrant, timezone_name: str) -> None:
    entry = entries.setdefault(key, {"type": key[0], "token": key[1], "device_refs": set(),
                                     "valid_from": grant.valid_from, "valid_until": grant.valid_until,
                                     "schedule": {}, "scheduled": True, "timezone": timezone_name})
    entry["device_refs"] |= device_refs
    entry["valid_from"] = min(entry["valid_from"], grant.valid_from)
    if entry["valid_until"] is not None:
        entry["valid_until"] = None if grant.valid_until is None else max(entry["valid_until"], grant.valid_until)
    if not grant.schedule:
        entry["scheduled"] = False  # one grant at any time: the entry is not limited to windows
    elif entry["scheduled"]:
        for day, windows in grant.schedule.items():
            merged = entry["schedule"].setdefault(day, [])
            merged.extend(list(window) for window in windows if list(window) not in merged)


def allowlist_entries(*, partner_id: int, building_id: int, at=None) -> list[dict]:
    """The full allowlist of `partner_id` for one building, as the partner API expects it."""
    return _entries(partner_id=partner_id, building_id=building_id, at=at)


def allowlist_resident_entries(*, partner_id: int, building_id: int, resident_id: int, at=None) -> list[dict]:
    """The entries of one resident in the allowlist of `partner_id` for one building (the same
    rules as `allowlist_entries`, restricted to that resident's grants)."""
    return _entries(partner_id=partner_id, building_id=building_id, at=at, resident_id=resident_id)


def _entries(*, partner_id: int, building_id: int, at=None, resident_id: int | None = None,
             resident_ids: set[int] | None = None) -> list[dict]:
    """The rules are access.policy's, applied to a whole site at once: the contracts allow plates
    and/or faces, the resident is not suspended (and, for faces, holds an active consent and a
    delivered enrolment), and the grant is listed (`policy.grant_listed`). `resident_id` or
    `resident_ids`: only the entries of that resident / those residents."""
    at = at or timezone.now()
    contracts = Facts().contracts(partner_id=partner_id, building_id=building_id)
    plates = contract_refusal(contracts, "plate", at) is None
    faces = contract_refusal(contracts, "face", at) is None
    devices = dict(Device.objects.filter(partner_id=partner_id, building_id=building_id)
                   .values_list("pk", "partner_device_ref"))
    if not devices or not (plates or faces):
        return []
    building = Building.objects.get(pk=building_id)
    local_at = at.astimezone(building.tz)
    grants = (
        AccessGrant.objects.select_related("residency", "resident")
        .filter(Q(building_id=building_id) | Q(device_id__in=devices), suspended=False)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=at))
    )
    if resident_id is not None:
        grants = grants.held_by(resident_id)
    if resident_ids is not None:
        grants = grants.filter(Q(resident_id__in=resident_ids) | Q(residency__resident_id__in=resident_ids))
    by_resident: dict[int, list[tuple[AccessGrant, set[str]]]] = {}
    for grant in grants:
        if not grant_listed(grant, at, local_at):
            continue
        refs = set(devices.values()) if grant.building_id else {devices[grant.device_id]}
        by_resident.setdefault(grant.holder_resident_id, []).append((grant, refs))
    suspended = set(Resident.objects.filter(pk__in=by_resident, suspended=True).values_list("pk", flat=True))
    credentials: dict[int, list[tuple[str, str]]] = {holder_id: [] for holder_id in by_resident}
    if plates:
        for holder_id, token in VehiclePlateToken.objects.filter(
            partner_id=partner_id, vehicle__resident_id__in=by_resident
        ).values_list("vehicle__resident_id", "token"):
            credentials[holder_id].append(("plate", token))
    if faces:
        consenting = set(Consent.objects.active(at).filter(partner_id=partner_id, resident_id__in=by_resident)
                         .values_list("resident_id", flat=True))
        for holder_id, subject in FaceEnrolment.objects.filter(
            partner_id=partner_id, resident_id__in=consenting, status__in=LISTED_ENROLMENTS
        ).values_list("resident_id", "subject_id"):
            credentials[holder_id].append(("face", subject))
    entries: dict = {}
    for holder_id, held in by_resident.items():
        if holder_id in suspended:
            continue
        for key in credentials[holder_id]:
            for grant, refs in held:
                _merge(entries, key, refs, grant, building.timezone)
    return [_entry(entry) for entry in sorted(entries.values(), key=lambda e: (e["type"], e["token"]))]


def _entry(merged: dict) -> dict:
    entry = {key: merged[key] for key in ("type", "token")}
    entry["device_refs"] = sorted(merged["device_refs"])
    entry["valid_from"] = merged["valid_from"].isoformat()
    entry["valid_until"] = merged["valid_until"].isoformat() if merged["valid_until"] else None
    if merged["scheduled"]:
        entry["schedule"] = {day: sorted(merged["schedule"][day]) for day in DAYS if day in merged["schedule"]}
        entry["timezone"] = merged["timezone"]
    return entry


def resident_credentials(*, resident_id: int) -> set[Credential]:
    """Every credential partners may know the resident by now: the plate tokens of their vehicles
    and the subject ids of their face enrolments that are not deleted or failed. Capture it
    BEFORE a change that drops credentials (a vehicle deleted or re-plated) and pass it to
    `allowlist_resident_changed` as `removed`."""
    plates = {
        Credential(partner_id, "plate", token)
        for partner_id, token in VehiclePlateToken.objects.filter(vehicle__resident_id=resident_id)
        .values_list("partner_id", "token")
    }
    faces = {
        Credential(partner_id, "face", subject)
        for partner_id, subject in FaceEnrolment.objects.filter(resident_id=resident_id)
        .exclude(status__in=[FaceEnrolment.Status.DELETED, FaceEnrolment.Status.FAILED])
        .values_list("partner_id", "subject_id")
    }
    return plates | faces


def vehicle_credentials(*, vehicle_id: int) -> set[Credential]:
    """The plate tokens of one vehicle, one per partner and accepted key (capture before changing its plate)."""
    return {
        Credential(partner_id, "plate", token)
        for partner_id, token in VehiclePlateToken.objects.filter(vehicle_id=vehicle_id).values_list("partner_id",
                                                                                                     "token")
    }


def grant_building_ids(grants) -> set[int]:
    """The buildings a queryset of grants targets (a building, or a device's building)."""
    return {b or d for b, d in grants.values_list("building_id", "device__building_id")} - {None}


def resident_grant_building_ids(*, resident_id: int) -> set[int]:
    """The buildings the resident holds grants for, in any state (suspended or ended included):
    where partners' allowlists may list them. Capture it before deleting the grants."""
    return grant_building_ids(AccessGrant.objects.held_by(resident_id))


def _resident_sites(resident_id: int, building_ids, partner_ids, at) -> list[tuple[int, int]]:
    """(partner, building) pairs to patch: the buildings the resident holds grants for
    (`resident_grant_building_ids`) or `building_ids`, under active plate/face contracts of
    active partners (a suspended partner's messages wait for its reinstatement)."""
    if building_ids is None:
        building_ids = resident_grant_building_ids(resident_id=resident_id)
    building_ids = {b for b in building_ids if b is not None}
    if not building_ids:
        return []
    contracts = PartnerContract.objects.active(at).filter(
        Q(allows_plate=True) | Q(allows_face=True), buildings__id__in=building_ids, partner__active=True
    )
    if partner_ids is not None:
        contracts = contracts.filter(partner_id__in=list(partner_ids))
    pairs = set(contracts.values_list("partner_id", "buildings__id"))
    return sorted((p, b) for p, b in pairs if b in building_ids)


def allowlist_resident_changed(
    *,
    resident_id: int,
    removed: Iterable[Credential] = (),
    building_ids: Iterable[int] | None = None,
    partner_ids: Iterable[int] | None = None,
) -> int:
    """Enqueue an `allowlist_patch` for every (partner, site) whose allowlist may hold the
    resident, after a change to what the resident may pass. Call it in the change's transaction.

    Sites: the buildings of the resident's grants (or `building_ids`), under an active contract
    allowing plates or faces (restricted to `partner_ids` if given). Per site, ``upserts`` are
    the resident's entries now (`allowlist_resident_entries`) and ``removals`` every credential
    of the resident at that partner - held now (`resident_credentials`) or passed in `removed`
    (captured before the change: a deleted vehicle's token, a revoked subject) - that is not
    upserted. A site with neither is skipped. Each patch is followed by an ``allowlist.changed``
    event. Returns the number of patches enqueued.

    Inside `allowlist_batch()` nothing is enqueued here: the change is remembered and the batch
    enqueues one patch per (partner, site) for all of its residents when it ends (returns 0).
    """
    batch = _batch.get()
    if batch is not None:
        batch.remember(resident_id=resident_id, removed=removed, building_ids=building_ids, partner_ids=partner_ids)
        return 0
    return _resident_patch(resident_id=resident_id, removed=removed, building_ids=building_ids,
                           partner_ids=partner_ids)


@transaction.atomic
def _resident_patch(*, resident_id: int, removed, building_ids, partner_ids) -> int:
    at = timezone.now()
    known = set(removed) | resident_credentials(resident_id=resident_id)
    patched = 0
    for partner_id, building_id in _resident_sites(resident_id, building_ids, partner_ids, at):
        upserts = allowlist_resident_entries(partner_id=partner_id, building_id=building_id,
                                             resident_id=resident_id, at=at)
        if _enqueue_patch(partner_id, building_id, upserts, {c for c in known if c.partner_id == partner_id}):
            patched += 1
    return patched


def _enqueue_patch(partner_id: int, building_id: int, upserts: list[dict], known: set[Credential]) -> bool:
    """Enqueue one patch: `upserts`, and the removal of every credential in `known` (of this
    partner) not upserted. Nothing when both are empty; returns whether a patch was enqueued."""
    listed = {(entry["type"], entry["token"]) for entry in upserts}
    removals = sorted({(c.type, c.token) for c in known} - listed)
    if not upserts and not removals:
        return False
    _enqueue(partner_id=partner_id, building_id=building_id, operation="allowlist_patch",
             body={"upserts": upserts, "removals": [{"type": t, "token": token} for t, token in removals]})
    return True


@dataclass(frozen=True, slots=True)
class _Change:
    resident_id: int
    removed: frozenset
    building_ids: frozenset | None
    partner_ids: frozenset | None


@dataclass
class AllowlistBatch:
    """What `allowlist_batch` collected; `patches` is the number enqueued once it has ended.

    `changes` is an ordered set (a resident's move-in and car are one change when they touch the
    same sites) and equal sets of ids are kept once: a batch of 50,000 residents holds its
    changes for the whole import."""

    changes: dict[_Change, None] = field(default_factory=dict)
    patches: int = 0
    _sets: dict[frozenset, frozenset] = field(default_factory=dict, repr=False)

    def remember(self, *, resident_id: int, removed, building_ids, partner_ids) -> None:
        change = _Change(resident_id, self._shared(removed), self._shared(building_ids), self._shared(partner_ids))
        self.changes[change] = None

    def _shared(self, values) -> frozenset | None:
        if values is None:
            return None
        values = frozenset(values)
        return self._sets.setdefault(values, values)


_batch: ContextVar[AllowlistBatch | None] = ContextVar("allowlist_batch", default=None)


@contextlib.contextmanager
def allowlist_batch():
    """Within this block, `allowlist_resident_changed` collects instead of enqueuing; when the
    block ends without an exception, one `allowlist_patch` is enqueued per (partner, site) that
    any of the collected changes touches, with the entries of every resident changed there as
    they are at that moment and the removals of their credentials no longer listed (the same
    rules as one resident's patch, for many at once). For bulk writes (master-data imports):
    a batch of N residents sends each site one message instead of N.

    Run the whole block in one transaction (the patches commit with the changes; a rolled-back
    change only makes its resident's entries be restated as they are). A nested block joins the
    outer one. Yields the AllowlistBatch (its `patches` count is set at the end)."""
    outer = _batch.get()
    if outer is not None:
        yield outer
        return
    batch = AllowlistBatch()
    token = _batch.set(batch)
    try:
        yield batch
    finally:
        _batch.reset(token)
    batch.patches = _batch_flush(batch.changes)


_FLUSH_CHUNK = 5000  # residents whose sites are worked out together (bounds the flush's memory)


@transaction.atomic
def _batch_flush(changes: Collection[_Change]) -> int:
    if not changes:
        return 0
    at = timezone.now()
    by_resident: dict[int, list[_Change]] = {}
    for change in changes:
        by_resident.setdefault(change.resident_id, []).append(change)
    # resident -> {(partner or None = any, building)}; residents with the same pairs share one set
    wanted: dict[int, frozenset[tuple[int | None, int]]] = {}
    shared: dict[frozenset, frozenset] = {}
    residents = list(by_resident)
    for start in range(0, len(residents), _FLUSH_CHUNK):
        chunk = residents[start:start + _FLUSH_CHUNK]
        grant_sites = _grant_sites([r for r in chunk if any(c.building_ids is None for c in by_resident[r])])
        for resident_id in chunk:
            pairs = set()
            for change in by_resident[resident_id]:
                buildings = change.building_ids if change.building_ids is not None else grant_sites.get(resident_id, ())
                partners = change.partner_ids if change.partner_ids is not None else (None,)
                pairs.update((partner, building) for partner in partners for building in buildings
                             if building is not None)
            pairs = frozenset(pairs)
            wanted[resident_id] = shared.setdefault(pairs, pairs)
    buildings = {building for pairs in shared for _, building in pairs}
    contracted = set(
        PartnerContract.objects.active(at).filter(
            Q(allows_plate=True) | Q(allows_face=True), buildings__id__in=buildings, partner__active=True
        ).values_list("partner_id", "buildings__id")
    )
    sites: dict[tuple[int, int], set[int]] = {}
    for resident_id, pairs in wanted.items():
        for partner_id, building_id in contracted:
            if (None, building_id) in pairs or (partner_id, building_id) in pairs:
                sites.setdefault((partner_id, building_id), set()).add(resident_id)
    del wanted, shared
    known: dict[int, list[tuple[Credential, int]]] = {}  # partner -> (credential, its resident)
    for credential, owner in _credential_owners(set(by_resident), changes).items():
        known.setdefault(credential.partner_id, []).append((credential, owner))
    patched = 0
    for (partner_id, building_id), site_residents in sorted(sites.items(), key=lambda item: item[0]):
        upserts = _entries(partner_id=partner_id, building_id=building_id, at=at, resident_ids=site_residents)
        site_known = {credential for credential, owner in known.get(partner_id, ()) if owner in site_residents}
        if _enqueue_patch(partner_id, building_id, upserts, site_known):
            patched += 1
    return patched


def _grant_sites(resident_ids: list[int]) -> dict[int, set[int]]:
    """{resident: the buildings their grants (personal, or through a residency) are for}."""
    if not resident_ids:
        return {}
    grant_sites: dict[int, set[int]] = {}
    grants = AccessGrant.objects.filter(Q(resident_id__in=resident_ids) | Q(residency__resident_id__in=resident_ids))
    for holder, via_residency, building, device_building in grants.values_list(
        "resident_id", "residency__resident_id", "building_id", "device__building_id"
    ):
        grant_sites.setdefault(holder or via_residency, set()).add(building or device_building)
    return grant_sites


def _credential_owners(resident_ids: set[int], changes: Collection[_Change]) -> dict[Credential, int]:
    """Which of the residents each of their credentials (held now, or removed by a change) is."""
    owners = {credential: change.resident_id for change in changes for credential in change.removed}
    for resident_id, partner_id, token in VehiclePlateToken.objects.filter(
        vehicle__resident_id__in=resident_ids
    ).values_list("vehicle__resident_id", "partner_id", "token"):
        owners[Credential(partner_id, "plate", token)] = resident_id
    for resident_id, partner_id, subject in FaceEnrolment.objects.filter(resident_id__in=resident_ids).exclude(
        status__in=[FaceEnrolment.Status.DELETED, FaceEnrolment.Status.FAILED]
    ).values_list("resident_id", "partner_id", "subject_id"):
        owners[Credential(partner_id, "face", subject)] = resident_id
    return owners


@transaction.atomic
def allowlist_push_full(*, partner_id: int, building_id: int) -> int:
    """Enqueue the full allowlist of one site for the partner (outbox `allowlist_put`, ordered per
    site) and its ``allowlist.changed`` event. Returns the number of entries. The delivery
    records the `partner.allowlist_full` call."""
    entries = allowlist_entries(partner_id=partner_id, building_id=building_id)
    _enqueue(partner_id=partner_id, building_id=building_id, operation="allowlist_put", body={"entries": entries})
    return len(entries)


def allowlist_push_site(*, building_id: int, partner_ids: Iterable[int] | None = None) -> int:
    """Full push of one site for every active partner (or those of `partner_ids`) under an active
    contract there allowing plates or faces - after a change to the site itself (a device's ref,
    the building's time zone). Returns the number of partners pushed."""
    contracts = PartnerContract.objects.active().filter(
        Q(allows_plate=True) | Q(allows_face=True), buildings__id=building_id, partner__active=True
    )
    if partner_ids is not None:
        contracts = contracts.filter(partner_id__in=list(partner_ids))
    partners = sorted(set(contracts.values_list("partner_id", flat=True)))
    for partner_id in partners:
        allowlist_push_full(partner_id=partner_id, building_id=building_id)
    return len(partners)


def allowlist_push_partner_sites(*, partner_id: int) -> int:
    """Full push of every site where the partner has devices (an empty list where no active
    contract lets it decide any more), after its contracts or credentials changed. Returns the
    number of sites pushed."""
    buildings = sorted(set(Device.objects.filter(partner_id=partner_id).values_list("building_id", flat=True)))
    for building_id in buildings:
        allowlist_push_full(partner_id=partner_id, building_id=building_id)
    return len(buildings)


def _enqueue(*, partner_id: int, building_id: int, operation: str, body: dict) -> int:
    ref = site_ref(building_id)
    ordering_key = f"allowlist:{ref}"
    version = _next_version(partner_id, ordering_key)
    outbox_enqueue(partner_id=partner_id, operation=operation, ordering_key=ordering_key,
                   payload={"site_ref": ref, "version": version, **body},
                   idempotency_key=f"allowlist-{partner_id}-{building_id}-{version}")
    partner_event_enqueue(partner_id=partner_id, event_type="allowlist.changed",
                          data={"site_ref": ref, "version": version})
    return version


def _next_version(partner_id: int, ordering_key: str) -> int:
    """Milliseconds since the epoch, above the site's last version (caller's transaction)."""
    if connection.vendor == "postgresql":
        # Held until commit: a concurrent writer for the same site waits, then sees our version.
        lock = int.from_bytes(hashlib.blake2b(f"{partner_id}:{ordering_key}".encode(), digest_size=8).digest(),
                              "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock])
    last = (
        OutboxMessage.objects.filter(partner_id=partner_id, ordering_key=ordering_key,
                                     operation__in=ALLOWLIST_OPERATIONS)
        .order_by("-pk").values_list("payload__version", flat=True).first()
    )
    return max(int(time.time() * 1000), int(last or 0) + 1)


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
