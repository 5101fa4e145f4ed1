"""Remote opening of a door or barrier through the device's partner: by a resident from the app
(`device_open`), or by a staff member from the portal for someone at the door - a courier, a
visitor (`staff_device_open`).

`device_authorise` is the rule check (access.policy) every device operation of the app runs and
records; `device_open` adds the Idempotency-Key record, the partner call and the audit event.
`staff_device_open` calls the partner the same way (one `OpenRequest` per key, the same replay
and takeover rules) under the staff member's own pairwise subject id and rate limit.

A request left `pending` by a process that died mid-call would block its key (409) forever:
after settings.OPEN_REQUEST_STALE_S (default 30 s; the open's whole budget - connect, token and
open read timeouts, no retries - is 12 s by default) a retry with the same key takes it over and
sends the same partner request id again, as a retry after `unavailable` does. While a request
is pending, `completed_at` holds when a retry last claimed it (None for the first attempt), so
the stale clock restarts with every claim.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from access.anomalies import resident_open_observe
from access.errors import IdempotencyKeyReused, OpenInProgress, RuleDenied, StaffOpenRateExceeded
from access.models import Device, OpenRequest, Resident
from access.policy import resident_verdict
from access.reasons import StaffOpenReason, resident_code
from access.services.devices import device_set_online
from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from consent.subjects import pairwise_staff_subject_id, pairwise_subject_id
from core.ratelimit import Limit, hit
from core.security.identifiers import user_ref
from core.security.tenancy import company_ids_for_user
from partners.client import (
    PartnerRejected,
    PartnerUnavailable,
    PartnerUnavailableProblem,
    open_device,
    partner_connection_for,
)
from partners.selectors import contract_covering, current_credentials

logger = logging.getLogger(__name__)

DEFAULT_STALE_S = 30
STAFF_OPEN_KINDS = (Device.Kind.INTERCOM_DOOR, Device.Kind.BARRIER)
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
_FINAL = {OpenRequest.Result.OPENED, OpenRequest.Result.DENIED, OpenRequest.Result.OFFLINE}
_OUTCOMES = {
    OpenRequest.Result.OPENED: Outcome.SUCCESS,
    OpenRequest.Result.DENIED: Outcome.DENIED,
    OpenRequest.Result.OFFLINE: Outcome.UNAVAILABLE,
}


@dataclass(frozen=True)
class OpenOutcome:
    request: OpenRequest
    replayed: bool


def _audit(action, *, user, device: Device, outcome: Outcome, reason: str, source_ip=None,
           actor_kind=ActorKind.RESIDENT):
    record(
        action=action, outcome=outcome, actor_kind=actor_kind, actor_ref=user_ref(user),
        object_type="device", object_ref=f"device:{device.pk}", partner_id=device.partner_id,
        company_id=device.building.company_id, building_id=device.building_id,
        device_ref=device.partner_device_ref, reason=reason.replace("-", "_"), source_ip=source_ip,
    )


def device_authorise(*, user, resident: Resident, device: Device, operation: str, action: Action,
                     source_ip=None) -> None:
    """Ask access.policy whether the resident may do `operation` ("open", "video", "plate") on one
    of their devices now. Records grant.check (success, or denied with the reason's resident
    code); on a denial also records `action` denied, then raises RuleDenied."""
    verdict = resident_verdict(resident=resident, device=device, operation=operation)
    code = None if verdict.allows else resident_code(verdict.reason, starts_later=verdict.starts_later)
    _audit(Action.GRANT_CHECK, user=user, device=device, outcome=Outcome.DENIED if code else Outcome.SUCCESS,
           reason=code or operation, source_ip=source_ip)
    if code:
        _audit(action, user=user, device=device, outcome=Outcome.DENIED, reason=code, source_ip=source_ip)
        raise RuleDenied(code)


def resident_subject(*, resident: Resident, device: Device) -> str:
    """The resident's pairwise subject id for the device's partner; 503 if it has no credentials."""
    credentials = current_credentials(partner=device.partner)
    if credentials is None:
        raise PartnerUnavailableProblem(detail=_("The partner platform is not configured."))
    return pairwise_subject_id(subject_key=credentials.subject_key_bytes(), resident_id=resident.pk)


def device_open(*, user, resident: Resident, device: Device, idempotency_key: str, source_ip=None) -> OpenOutcome:
    """Open a door or barrier remotely, at most once per (user, Idempotency-Key).

    Checks: a stored request with the key is returned as is (another device:
    IdempotencyKeyReused; still running: OpenInProgress, unless pending for longer than
    OPEN_REQUEST_STALE_S: then this call takes it over); then the rules (RuleDenied with the
    reason). Counts the open per resident for anomaly detection (`resident_open_observe`: an
    `open_burst` alert). Calls the partner with the resident's pairwise subject id and the
    request's own partner request id (so a retry after `unavailable` repeats the same request).
    Records resident.open with the outcome and reason (and grant.check). Raises
    PartnerUnavailableProblem (503 + Retry-After) when the partner is down, times out or its
    breaker is open.
    """
    existing = OpenRequest.objects.filter(user=user, idempotency_key=idempotency_key).first()
    if existing is not None:
        replay = _replay(existing, device)
        if replay is not None:
            return replay
    device_authorise(user=user, resident=resident, device=device, operation="open", action=Action.RESIDENT_OPEN,
                     source_ip=source_ip)
    subject = resident_subject(resident=resident, device=device)
    request, replay = _pending_request(user=user, device=device, idempotency_key=idempotency_key, existing=existing)
    if replay is not None:
        return replay
    resident_open_observe(resident_id=resident.pk, partner_id=device.partner_id)

    def audit(outcome, reason):
        _audit(Action.RESIDENT_OPEN, user=user, device=device, outcome=outcome, reason=reason, source_ip=source_ip)

    return _partner_open(request, user=user, device=device, subject=subject, audit=audit)


def _pending_request(*, user, device: Device, idempotency_key: str,
                     existing: OpenRequest | None) -> tuple[OpenRequest | None, OpenOutcome | None]:
    """(the request this attempt runs, None) or (None, the stored outcome to replay); `existing`:
    the stored request with this key the caller looked up, if any."""
    if existing is not None:
        replay = _replay(existing, device)
        if replay is not None:
            return None, replay
        _claim(existing)
        return existing, None
    try:
        with transaction.atomic():
            return OpenRequest.objects.create(
                user=user, idempotency_key=idempotency_key, device=device, partner_request_id=str(uuid.uuid4())
            ), None
    except IntegrityError:
        request = OpenRequest.objects.get(user=user, idempotency_key=idempotency_key)
        replay = _replay(request, device)
        if replay is not None:
            return None, replay
        _claim(request)
        return request, None


def _partner_open(request: OpenRequest, *, user, device: Device, subject: str, audit) -> OpenOutcome:
    """Ask the device's partner to open it for `request` and store the result; `audit(outcome,
    reason)` records the caller's own event. The device's online flag follows what the partner said."""
    try:
        result = open_device(
            partner_connection_for(device.partner), device_ref=device.partner_device_ref, subject=subject,
            request_id=request.partner_request_id, company_id=device.building.company_id,
            building_id=device.building_id, actor_ref=user_ref(user),
        ).result
        reason = result
    except PartnerUnavailable as exc:
        _finish(request, OpenRequest.Result.UNAVAILABLE)
        audit(Outcome.UNAVAILABLE, f"partner_{exc.reason}")
        raise PartnerUnavailableProblem(exc) from None
    except PartnerRejected:
        result, reason = OpenRequest.Result.DENIED, "partner_rejected"
    if result not in _FINAL:
        result, reason = OpenRequest.Result.DENIED, "partner_unexpected_result"
    _finish(request, result)
    if result == OpenRequest.Result.OFFLINE and device.online:
        device_set_online(device=device, online=False)
    elif result == OpenRequest.Result.OPENED and not device.online:
        device_set_online(device=device, online=True)
    audit(_OUTCOMES[result], reason)
    return OpenOutcome(request=request, replayed=False)


def staff_device_open(*, actor, device: Device, reason: str, idempotency_key: str, source_ip=None) -> OpenOutcome:
    """A staff member opens a door or barrier remotely for someone at it (a courier, a visitor).

    Checks, in this order, and nothing is sent or stored when one fails: `actor` is a staff member
    of the device's management company (core.security.tenancy; a break-glass superuser: any)
    holding `access.open_device`, else PermissionDenied; the device is an intercom door or a
    barrier (ValidationError `not_openable`); `reason` is a StaffOpenReason (ValidationError
    `reason`); STAFF_OPEN_RATE per staff member (StaffOpenRateExceeded with the seconds to wait);
    an active contract of the device's partner covers its building and allows opening, and the
    partner is usable (RuleDenied "contract-not-covering"). The last two refusals are recorded as
    `staff.open` denied (reason `rate_limited` / `contract_not_covering`).

    Then, like the resident's open: one OpenRequest per (actor, `idempotency_key` - the form's
    one-time token), so a form sent twice opens once (the stored result is returned); the partner
    is called with the staff member's pairwise subject id; `staff.open` is recorded with the
    actor (staff, pseudonymous ref), the stated reason and the outcome (success, denied,
    unavailable), beside the partner call's own `partner.open`. Raises PartnerUnavailableProblem
    when the partner is down, times out or its breaker is open.
    """
    companies = company_ids_for_user(actor)
    if not getattr(actor, "is_staff", False) or not actor.has_perm("access.open_device") or (
        companies is not None and device.building.company_id not in companies
    ):
        raise PermissionDenied(_("Not allowed to open this device."))
    if device.kind not in STAFF_OPEN_KINDS:
        raise ValidationError({"device": ValidationError(
            _("Only intercom doors and barriers can be opened."), code="not_openable")})
    if reason not in StaffOpenReason.values:
        raise ValidationError({"reason": ValidationError(_("Choose why the device is opened."), code="reason")})

    def audit(outcome, code):
        _audit(Action.STAFF_OPEN, user=actor, device=device, outcome=outcome, reason=code, source_ip=source_ip,
               actor_kind=ActorKind.STAFF)

    wait = hit(f"staff_open:user:{actor.pk}", Limit.parse(settings.STAFF_OPEN_RATE), path="staff_write",
               fail_open=False)
    if wait is not None:
        audit(Outcome.DENIED, "rate_limited")
        raise StaffOpenRateExceeded(wait)
    partner = device.partner
    if not partner.is_usable or contract_covering(partner_id=partner.pk, building_id=device.building_id,
                                                  operation="open") is None:
        audit(Outcome.DENIED, "contract_not_covering")
        raise RuleDenied("contract-not-covering")
    credentials = current_credentials(partner=partner)
    if credentials is None:
        raise PartnerUnavailableProblem(detail=_("The partner platform is not configured."))
    request, replay = _pending_request(
        user=actor, device=device, idempotency_key=idempotency_key,
        existing=OpenRequest.objects.filter(user=actor, idempotency_key=idempotency_key).first(),
    )
    if replay is not None:
        return replay
    subject = pairwise_staff_subject_id(subject_key=credentials.subject_key_bytes(), user_id=actor.pk)
    return _partner_open(request, user=actor, device=device, subject=subject,
                         audit=lambda outcome, result: audit(outcome, reason if outcome == Outcome.SUCCESS else result))


def _replay(request: OpenRequest, device: Device) -> OpenOutcome | None:
    if request.device_id != device.pk:
        raise IdempotencyKeyReused()
    if request.result in _FINAL:
        return OpenOutcome(request=request, replayed=True)
    if request.result == OpenRequest.Result.PENDING and not _is_stale(request):
        raise OpenInProgress()
    return None  # unavailable, or pending but abandoned: try again


def _stale_s() -> float:
    return float(getattr(settings, "OPEN_REQUEST_STALE_S", DEFAULT_STALE_S))


def _is_stale(request: OpenRequest) -> bool:
    started = request.completed_at or request.created_at
    return started < timezone.now() - timedelta(seconds=_stale_s())


def _claim(request: OpenRequest) -> None:
    """Claim a request for this attempt: one left `unavailable`, or one `pending` past the stale
    timeout (its process died). A single conditional UPDATE, so of concurrent retries exactly one
    wins; the others get 409. The claim time goes to `completed_at` (see the module docstring)."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=_stale_s())
    abandoned = Q(result=OpenRequest.Result.PENDING) & (
        Q(completed_at__lt=cutoff) | Q(completed_at__isnull=True, created_at__lt=cutoff)
    )
    claimed = OpenRequest.objects.filter(Q(pk=request.pk) & (Q(result=OpenRequest.Result.UNAVAILABLE) | abandoned))
    if not claimed.update(result=OpenRequest.Result.PENDING, completed_at=now):
        raise OpenInProgress()
    if request.result == OpenRequest.Result.PENDING:
        logger.warning("stale open request taken over", extra={"open_request_id": request.pk})
    request.result, request.completed_at = OpenRequest.Result.PENDING, now


def _finish(request: OpenRequest, result: str) -> None:
    request.result = result
    request.completed_at = timezone.now()
    request.save(update_fields=["result", "completed_at"])
