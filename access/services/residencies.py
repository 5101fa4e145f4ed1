"""Residencies: a resident moves into a flat, and out of it.

A move-out ends the residency and, at the same moment, every grant held through it; it patches
the partners' allowlists of the building and revokes the resident's face consents for that
building (unless they still live there) - at once when the move-out date has come, else on its
day (`move_outs_due`, an hourly beat task: decisions and allowlists judge validity by date
already, consent revocation must wait for the day).
"""

import datetime
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from access.models import Residency, Resident, Unit
from access.services.allowlist import allowlist_resident_changed, grant_building_ids, resident_credentials
from access.services.auditing import audit_change, clean_save
from access.services.grants import grant_suspend
from access.services.plate_tokens import resident_tokens_refresh
from consent.services import subject_forget

LOOKBACK_DAYS = 3  # a few missed runs of the move-out task are still caught up


def _audit(residency: Residency, actor, reason: str) -> None:
    audit_change(actor=actor, object_type="residency", pk=residency.pk, reason=reason,
                 company_id=residency.resident.company_id, building_id=residency.unit.building_id)


@transaction.atomic
def residency_create(
    *, resident: Resident, unit: Unit, kind: str, valid_from=None, valid_until=None, actor=None
) -> Residency:
    """Link a resident to a flat. Checks: the flat's building belongs to the resident's company,
    dates in order (database constraint). Records admin.change. Vehicle plate tokens are
    recomputed, since the resident may now be in a building another partner covers."""
    if unit.building.company_id != resident.company_id:
        raise ValidationError({"unit": gettext("The flat belongs to another management company.")})
    residency = clean_save(
        Residency(
            resident=resident, unit=unit, kind=kind,
            valid_from=valid_from or timezone.localdate(), valid_until=valid_until,
        )
    )
    _audit(residency, actor, "created")
    resident_tokens_refresh(resident)
    return residency


@transaction.atomic
def residency_end(*, residency: Residency, on=None, actor=None) -> Residency:
    """Move-out: end the residency on `on` (default today) and end, at the same moment, every
    grant held through it. Idempotent (a residency already ended by `on` stays as it is).
    Checks: the end is after the start. Records admin.change "ended"; patches the allowlists of
    the residency's sites; revokes the building's face consents if `on` has come (see the module
    docstring)."""
    on = on or timezone.localdate()
    residency = _locked(residency)
    if residency.valid_until is not None and residency.valid_until <= on:
        return residency
    return _end(residency, on, actor)


@transaction.atomic
def residency_update(*, residency: Residency, kind: str, valid_from, valid_until, actor=None) -> Residency:
    """Change a residency's kind and dates (the admin's form; resident and flat never change).

    A move-out date set or brought forward is a move-out, with every effect of `residency_end`
    (its grants end, allowlists patched, consents revoked once the date has come). Any other
    change records admin.change "updated", recomputes the resident's plate tokens and patches the
    allowlists of the building (a residency that starts later, or runs longer, changes what its
    grants allow). Checks: dates in order (database constraint)."""
    residency = _locked(residency)
    ends_earlier = valid_until is not None and (residency.valid_until is None or valid_until < residency.valid_until)
    residency.kind, residency.valid_from = kind, valid_from
    if ends_earlier:
        return _end(residency, valid_until, actor)
    before = resident_credentials(resident_id=residency.resident_id)
    residency.valid_until = valid_until
    clean_save(residency)
    _audit(residency, actor, "updated")
    resident_tokens_refresh(residency.resident)
    sites = {residency.unit.building_id} | grant_building_ids(residency.grants.all())
    allowlist_resident_changed(resident_id=residency.resident_id, removed=before, building_ids=sites)
    return residency


@transaction.atomic
def residency_delete(*, residency: Residency, actor=None) -> None:
    """Delete a residency entered by mistake, with the grants held through it. Records
    admin.change "deleted"; recomputes the resident's plate tokens, patches the allowlists of its
    sites and revokes the building's face consents unless the resident still lives there."""
    residency = _locked(residency)
    resident, building_id = residency.resident, residency.unit.building_id
    before = resident_credentials(resident_id=resident.pk)
    sites = {building_id} | grant_building_ids(residency.grants.all())
    _audit(residency, actor, "deleted")
    residency.delete()
    resident_tokens_refresh(resident)
    allowlist_resident_changed(resident_id=resident.pk, removed=before, building_ids=sites)
    _forget_consents_after_leaving(resident_id=resident.pk, building_id=building_id, today=timezone.localdate(),
                                   actor=actor)


def _locked(residency: Residency) -> Residency:
    return Residency.objects.select_for_update().select_related("resident", "unit").get(pk=residency.pk)


def _end(residency: Residency, on: datetime.date, actor) -> Residency:
    """End a locked residency on `on` with its grants (see residency_end)."""
    before = resident_credentials(resident_id=residency.resident_id)
    residency.valid_until = on
    clean_save(residency)
    today = timezone.localdate()
    ends_at = timezone.now() if on <= today else _start_of_day(on)
    for grant in residency.grants.all():
        if grant.valid_until is None or grant.valid_until > ends_at:
            grant.valid_until = max(ends_at, grant.valid_from + datetime.timedelta(microseconds=1))
            grant.save(update_fields=["valid_until"])
    _audit(residency, actor, "ended")
    resident_tokens_refresh(residency.resident)
    sites = {residency.unit.building_id} | grant_building_ids(residency.grants.all())
    allowlist_resident_changed(resident_id=residency.resident_id, removed=before, building_ids=sites)
    if on <= today:
        _forget_consents_after_leaving(resident_id=residency.resident_id, building_id=residency.unit.building_id,
                                       today=today, actor=actor)
    return residency


def _start_of_day(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def _forget_consents_after_leaving(*, resident_id: int, building_id: int, today: datetime.date, actor=None) -> int:
    """Revoke (reason `move_out`) the resident's face consents for the building, unless they
    still live there. Returns how many were revoked."""
    still_there = any(
        residency.is_current(today)
        for residency in Residency.objects.filter(resident_id=resident_id, unit__building_id=building_id)
    )
    if still_there:
        return 0
    return subject_forget(resident_id=resident_id, reason="move_out", building_id=building_id, actor=actor)


def move_outs_due(*, today: datetime.date | None = None) -> int:
    """Revoke (reason `move_out`) the face consents tied to buildings residents moved out of in the
    last LOOKBACK_DAYS days, unless they live in that building again. Idempotent: only open consents
    are revoked, each audited and its deletion sent to the partner. Returns how many were revoked."""
    today = today or timezone.localdate()
    ended = (
        Residency.objects.filter(valid_until__gt=today - datetime.timedelta(days=LOOKBACK_DAYS),
                                 valid_until__lte=today)
        .values_list("resident_id", "unit__building_id")
        .distinct()
    )
    return sum(
        _forget_consents_after_leaving(resident_id=resident_id, building_id=building_id, today=today)
        for resident_id, building_id in sorted(ended)
    )


@dataclass
class MoveOut:
    """What `residents_move_out` did: counts, and the residencies it could not end with why."""

    ended: int = 0
    grants_suspended: int = 0
    refused: list[tuple[Residency, list[str]]] = field(default_factory=list)


@transaction.atomic
def residents_move_out(*, residents, actor=None) -> MoveOut:
    """Move the residents out today: end each current or future residency (`residency_end`) and
    suspend their personal grants (`grant_suspend`). A residency that cannot end today (it starts
    today) is left as it is and reported in `refused`; the others go ahead."""
    outcome = MoveOut()
    today = timezone.localdate()
    for resident in residents:
        for residency in resident.residencies.filter(Q(valid_until__isnull=True) | Q(valid_until__gt=today)):
            try:
                with transaction.atomic():
                    residency_end(residency=residency, actor=actor)
            except ValidationError as exc:
                outcome.refused.append((residency, exc.messages))
                continue
            outcome.ended += 1
        for grant in resident.grants.filter(suspended=False).select_related("building", "device__building"):
            grant_suspend(grant=grant, actor=actor)
            outcome.grants_suspended += 1
    return outcome
