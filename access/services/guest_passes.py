"""Guest passes: a resident lets a guest car through a barrier of their building, for a while or once.

Whether a pass lets a car in, and its use, are the partner's access decision's
(access.policy, access.services.decisions).

Settings: GUEST_PASSES_ACTIVE_MAX (default 5 passes not yet ended per resident),
GUEST_PASS_MAX_DAYS (default 7: the longest validity of one pass).
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from access.errors import RuleDenied
from access.models import Device, GuestPass, Resident
from access.plates import InvalidPlate, normalise_plate
from access.policy import resident_verdict
from access.reasons import resident_code
from access.selectors.guest_passes import guest_passes_active_count
from access.services.plate_tokens import guest_pass_tokens
from audit.actions import Action, Outcome
from audit.actors import actor_fields
from audit.services import record
from partners.selectors import current_credentials

CLOCK_SKEW = datetime.timedelta(minutes=5)


def active_max() -> int:
    return int(getattr(settings, "GUEST_PASSES_ACTIVE_MAX", 5))


def max_duration() -> datetime.timedelta:
    return datetime.timedelta(days=int(getattr(settings, "GUEST_PASS_MAX_DAYS", 7)))


def _audit(guest_pass: GuestPass, actor, action: Action, reason: str) -> None:
    device = guest_pass.device
    record(
        action=action, outcome=Outcome.SUCCESS,
        **actor_fields(actor),
        object_type="guest_pass", object_ref=f"guest_pass:{guest_pass.pk}", partner_id=device.partner_id,
        company_id=device.building.company_id, building_id=device.building_id,
        device_ref=device.partner_device_ref, reason=reason,
    )


@transaction.atomic
def guest_pass_create(
    *,
    resident: Resident,
    device: Device,
    plate: str,
    valid_from: datetime.datetime | None = None,
    valid_until: datetime.datetime | None = None,
    one_time: bool = False,
    label: str = "",
    actor=None,
) -> GuestPass:
    """Create a guest pass for a car plate at one barrier.

    Checks (ValidationError with a field and code): the device is a barrier (`not_a_barrier`)
    the resident may use now with plate recognition (access.policy, operation "plate"; else
    RuleDenied with the reason); a valid plate (InvalidPlate codes); valid_from
    not in the past (5 min skew allowed) and before valid_until (default valid_from + 1 day),
    at most GUEST_PASS_MAX_DAYS long (`too_long`); fewer than GUEST_PASSES_ACTIVE_MAX passes
    not yet ended (`limit_reached`, counted under a lock on the resident); the partner has
    current credentials (`partner_not_configured`). Stores the plate normalised and encrypted
    plus its token under the partner's plate key (and under the previous key during a rotation's
    overlap: access.services.plate_tokens). Records resident.guest_pass_create.
    """
    Resident.objects.select_for_update().filter(pk=resident.pk).first()
    if device.kind != Device.Kind.BARRIER:
        raise ValidationError({"device": ValidationError(gettext("Guest passes are for barriers."),
                              code="not_a_barrier")})
    verdict = resident_verdict(resident=resident, device=device, operation="plate")
    if not verdict.allows:
        raise RuleDenied(resident_code(verdict.reason, starts_later=verdict.starts_later))
    try:
        normalised = normalise_plate(plate)
    except InvalidPlate as exc:
        raise ValidationError({"plate": ValidationError(exc.message, code=exc.code)}) from None
    now = timezone.now()
    valid_from = valid_from or now
    valid_until = valid_until or valid_from + datetime.timedelta(days=1)
    if valid_from < now - CLOCK_SKEW:
        raise ValidationError({"valid_from": ValidationError(gettext("A pass cannot start in the past."),
                              code="in_past")})
    if valid_until <= valid_from:
        raise ValidationError({"valid_until": ValidationError(gettext("A pass must end after it starts."),
                              code="order")})
    if valid_until - valid_from > max_duration():
        raise ValidationError(
            {"valid_until": ValidationError(
                ngettext("A pass lasts at most %(days)s day.", "A pass lasts at most %(days)s days.",
                         max_duration().days) % {"days": max_duration().days}, code="too_long")}
        )
    if guest_passes_active_count(resident=resident, at=now) >= active_max():
        raise ValidationError(
            {"non_field_errors": ValidationError(
                gettext("You already have %(count)s active guest passes; revoke one first.")
                % {"count": active_max()}, code="limit_reached"
            )}
        )
    credentials = current_credentials(partner=device.partner)
    if credentials is None:
        raise ValidationError(
            {"device": ValidationError(gettext("This barrier's platform is not configured."),
                                       code="partner_not_configured")}
        )
    token, previous_token = guest_pass_tokens(partner_id=device.partner_id, plate=normalised)
    guest_pass = GuestPass(
        resident=resident, device=device, plate=normalised, plate_token=token, previous_plate_token=previous_token,
        label=label, valid_from=valid_from, valid_until=valid_until, one_time=one_time,
    )
    guest_pass.full_clean()
    guest_pass.save()
    _audit(guest_pass, actor, Action.RESIDENT_GUEST_PASS_CREATE, "created")
    return guest_pass


@transaction.atomic
def guest_pass_revoke(*, guest_pass: GuestPass, actor=None) -> GuestPass:
    """Revoke a pass (idempotent: a revoked pass stays as it is). Records
    resident.guest_pass_revoke the first time."""
    guest_pass = GuestPass.objects.select_for_update().select_related("device__building").get(pk=guest_pass.pk)
    if guest_pass.revoked_at is None:
        guest_pass.revoked_at = timezone.now()
        guest_pass.save(update_fields=["revoked_at"])
        _audit(guest_pass, actor, Action.RESIDENT_GUEST_PASS_REVOKE, "revoked")
    return guest_pass
