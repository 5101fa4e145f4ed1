"""Remote opening of a door or barrier by a resident, through the device's partner.

`device_authorise` is the rule check (access.policy) every device operation of the app runs and
records; `device_open` adds the Idempotency-Key record, the partner call and the audit event.

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
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from access.anomalies import resident_open_observe
from access.errors import IdempotencyKeyReused, OpenInProgress, RuleDenied
from access.models import Device, OpenRequest, Resident
from access.policy import resident_verdict
from access.reasons import resident_code
from access.services.devices import device_set_online
from audit.actions import Action, ActorKind, Outcome
from audit.services import record
from consent.subjects import pairwise_subject_id
from core.security.identifiers import user_ref
from partners.client import (
    PartnerRejected,
    PartnerUnavailable,
    PartnerUnavailableProblem,
    open_device,
    partner_connection_for,
)
from partners.selectors import current_credentials

logger = logging.getLogger(__name__)

DEFAULT_STALE_S = 30
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


def _audit(action, *, user, device: Device, outcome: Outcome, reason: str, source_ip=None):
    record(
        action=action, outcome=outcome, actor_kind=ActorKind.RESIDENT, actor_ref=user_ref(user),
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
        raise PartnerUnavailableProblem(detail="The partner platform is not configured.")
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
    request = existing
    if request is None:
        try:
            with transaction.atomic():
                request = OpenRequest.objects.create(
                    user=user, idempotency_key=idempotency_key, device=device, partner_request_id=str(uuid.uuid4())
                )
        except IntegrityError:
            request = OpenRequest.objects.get(user=user, idempotency_key=idempotency_key)
            replay = _replay(request, device)
            if replay is not None:
                return replay
            _claim(request)
    else:
        _claim(request)
    resident_open_observe(resident_id=resident.pk, partner_id=device.partner_id)
    try:
        result = open_device(
            partner_connection_for(device.partner), device_ref=device.partner_device_ref, subject=subject,
            request_id=request.partner_request_id, company_id=device.building.company_id,
            building_id=device.building_id, actor_ref=user_ref(user),
        ).result
        reason = result
    except PartnerUnavailable as exc:
        _finish(request, OpenRequest.Result.UNAVAILABLE)
        _audit(Action.RESIDENT_OPEN, user=user, device=device, outcome=Outcome.UNAVAILABLE,
               reason=f"partner_{exc.reason}", source_ip=source_ip)
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
    _audit(Action.RESIDENT_OPEN, user=user, device=device, outcome=_OUTCOMES[result], reason=reason,
           source_ip=source_ip)
    return OpenOutcome(request=request, replayed=False)


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
