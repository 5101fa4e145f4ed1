"""Access decisions for a partner's device: a car at a barrier, a face at a door.

The hot path: decided from our own data alone (never a call out) by the rules of access.policy.
What they read comes through `access.policy.CachedFacts` (per process, valid while no such data
has changed); verdicts are never cached, only facts judged against the clock each time. When the
request runs on the change-log batch its process read last (core.cache.versioned.assume_unchanged,
as the partner API's view asks), the audit insert itself checks that nothing changed since - one
statement per steady-state decision - and a change raises FactsChanged with nothing written. The partner's rate
limit and the anomaly counters are one Redis round trip (access.anomalies.decision_admit)
between the verdict and its audit event.
"""

import datetime
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from access.anomalies import anomaly_alerts_raise, decision_admit
from access.errors import DecisionRateExceeded, DeviceNotFound, FactsChanged
from access.models import Device, GuestPass, Notification
from access.policy import CachedFacts, FaceSubject, Facts, PlateSubject, Verdict, access_data, verdict
from access.reasons import Reason
from access.services.notifications import notification_create
from audit.actions import Action, ActorKind, Outcome
from audit.services import record, record_if_unchanged
from core.cache.versioned import assumed_version, refresh
from core.security.identifiers import pseudonymous_ref
from partners.models import Partner

CREDENTIAL_TYPES = ("plate", "face")
GUEST_ARRIVED = "guest.arrived"


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
class _DeviceFacts:
    device: Device  # with its building
    contracts: tuple  # access.policy.Facts.contracts of the partner here


def _device_facts(partner_id: int, device_ref: str) -> _DeviceFacts | None:
    """The partner's own device by its ref, with its contracts there (None for unknown refs and
    other partners' devices): one cache entry, the first thing every decision reads."""
    device = (
        Device.objects.select_related("building")
        .filter(partner_id=partner_id, partner_device_ref=device_ref)
        .first()
    )
    if device is None:
        return None
    return _DeviceFacts(device, Facts().contracts(partner_id=partner_id, building_id=device.building_id))


def _allow_ttl() -> int:
    return int(getattr(settings, "ACCESS_DECISION_ALLOW_TTL_S", 60))


def _ttl(evaluation: Verdict, now) -> int:
    if not evaluation.allows:
        return getattr(settings, "ACCESS_DECISION_DENY_TTL_S", 10)
    ttl = _allow_ttl()
    ends = evaluation.grant.valid_until if evaluation.grant is not None else None
    guest_pass = evaluation.guest_pass
    if guest_pass is not None:
        ttl, ends = 0 if guest_pass.one_time else ttl, guest_pass.valid_until
    if ends is not None:
        ttl = min(ttl, max(int((ends - now).total_seconds()), 0))
    return ttl


def access_decide(
    *,
    partner: Partner,
    device_ref: str,
    credential_type: str,
    credential_token: str,
    request_id: str = "",
    observed_at: datetime.datetime | None = None,
    source_ip: str | None = None,
    counted: bool = False,
) -> Decision:
    """Decide whether `credential` may pass `device_ref` of `partner` now, from local data only.

    The device must be the partner's (else DeviceNotFound); the verdict is access.policy's for
    the plate token or face subject (operation "plate" or "face"). Before anything is used up or
    recorded, the decision is counted against the partner's rate limit and in the anomaly
    windows (access.anomalies.decision_admit; an unknown device too): over the limit,
    DecisionRateExceeded and nothing else happens (but the anomaly alerts it crossed). The alerts a
    decision crosses are raised after its audit event - their writes (a partner suspended) are
    not what it was decided on; the next decision sees them. A one-time guest pass that lets a car in is
    used up together with the decision's audit event (a concurrent decision that loses the race
    answers unknown_credential); a guest pass that lets a car in notifies its resident
    (`guest.arrived`). Records one `access.decision` audit event (no personal data; `subject_ref`
    is the pseudonymous ref of the resident the credential resolved to - the car's owner, the
    guest pass's host, the face's subject - so their history shows it).
    `observed_at` is the partner's clock, kept for its own logs; validity is judged on ours.

    On a batch of the change log assumed for this request (core.cache.versioned.assume_unchanged):
    the audit event is written only if nothing changed since (audit.services.record_if_unchanged);
    if something did, or the device is unknown, or a guest pass would be used, FactsChanged is raised
    with nothing written or used up - the caller refreshes, checks the partner again and decides
    again with `counted=True` (the request was already counted against the limits).
    """
    started = time.perf_counter()
    if credential_type not in CREDENTIAL_TYPES:
        raise ValueError(f"credential_type must be one of {CREDENTIAL_TYPES}")
    facts = CachedFacts(access_data.current_version())
    device_facts = facts.cached(("device", partner.pk, device_ref), lambda: _device_facts(partner.pk, device_ref))
    if device_facts is None:
        if not counted:
            _admit(partner.pk, device_ref, denied=True)  # unknown devices count too (and may be throttled)
        if refresh():  # "no such device" only from a fresh read
            raise FactsChanged()
        raise DeviceNotFound(device_ref)
    now = timezone.now()
    subject = PlateSubject(credential_token) if credential_type == "plate" else FaceSubject(credential_token)
    evaluation = verdict(facts=facts, device=device_facts.device, contracts=device_facts.contracts, subject=subject,
                         operation=credential_type, at=now, partner_usable=partner.is_usable)
    reason = evaluation.reason
    breaches = () if counted else _admit(
        partner.pk, device_ref, denied=not reason.allows, raise_alerts=False,
        unknown_credential=credential_token if reason == Reason.UNKNOWN_CREDENTIAL else None,
        resident_id=evaluation.resident_id).breaches
    audit = {"partner": partner, "device": device_facts.device, "request_id": request_id, "source_ip": source_ip,
             "started": started}
    try:
        if evaluation.guest_pass is None:
            return _decided(evaluation, now, **audit)
        if refresh():  # a pass is used up only on a fresh read (it starts a transaction: no statement to check in)
            raise FactsChanged()
        with transaction.atomic():  # a pass is used up, and its resident told, only with its audited decision
            if not _guest_pass_use(evaluation.guest_pass, now):
                evaluation = Verdict(Reason.UNKNOWN_CREDENTIAL)
            return _decided(evaluation, now, **audit)
    finally:  # after the decision's own event (its writes - a suspension - are not what it was decided on)
        if breaches:
            anomaly_alerts_raise(partner_id=partner.pk, breaches=breaches)


def _guest_pass_use(guest_pass: GuestPass, now) -> bool:
    """A guest pass lets its car in: a one-time pass is used up (False if another decision got
    there first: one conditional UPDATE, so exactly one car passes), and the resident is told
    the guest arrived - once per pass and allow TTL, since a partner asks again while a car waits."""
    if guest_pass.one_time and not GuestPass.objects.filter(pk=guest_pass.pk, used_at__isnull=True).update(
        used_at=now
    ):
        return False
    recent = now - datetime.timedelta(seconds=_allow_ttl())
    if guest_pass.one_time or not Notification.objects.filter(
        resident_id=guest_pass.resident_id, kind=GUEST_ARRIVED, data__guest_pass_id=guest_pass.pk,
        occurred_at__gte=recent,
    ).exists():
        notification_create(resident_id=guest_pass.resident_id, kind=GUEST_ARRIVED, device_id=guest_pass.device_id,
                            occurred_at=now, data={"guest_pass_id": guest_pass.pk})
    return True


def _admit(partner_id: int, device_ref: str, **observed):
    """Count the decision (rate limit, anomaly windows); raise DecisionRateExceeded over the limit
    (the alerts it crossed raised first). Returns the Admission."""
    admission = decision_admit(partner_id=partner_id, device_ref=device_ref, **observed)
    if admission.retry_after is not None:
        if admission.breaches:
            anomaly_alerts_raise(partner_id=partner_id, breaches=admission.breaches)
        raise DecisionRateExceeded(admission.retry_after)
    return admission


def _decided(evaluation: Verdict, now, *, partner, device, request_id, source_ip, started) -> Decision:
    """The Decision, and its `access.decision` audit event (a single INSERT: atomic on its own; on an
    assumed batch, written only if nothing changed since, else FactsChanged)."""
    reason = evaluation.reason
    decision = Decision(
        decision_id=uuid.uuid4().hex, reason=reason, ttl_s=_ttl(evaluation, now), device=device,
        resident_id=evaluation.resident_id,
    )
    event = (record if assumed_version() is None else record_if_unchanged)(
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
    if event is None:
        raise FactsChanged()
    return decision
