"""Audit events as sentences a property manager reads: what happened, to whom, how it ended."""

from dataclasses import dataclass

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from access.models import Device
from access.portal.labels import resident_label
from access.reasons import REASON_TEXTS, STAFF_DETAILS, Reason, StaffOpenReason
from access.selectors.timeline import RefNames
from audit.actions import Action, ActorKind, Outcome
from audit.models import AuditEvent

# Refusals of the resident's own open, as the audit log spells them (access.reasons codes, "_").
_RESIDENT_REFUSALS = {code.replace("-", "_"): text for code, text in STAFF_DETAILS.items()}
_PARTNER_PROBLEMS = {
    "partner_rejected": gettext_lazy("the partner refused"),
    "partner_unexpected_result": gettext_lazy("the partner answered something unexpected"),
    "offline": gettext_lazy("the device is offline"),
    "denied": gettext_lazy("the partner refused (e.g. the device is locked down)"),
    "rate_limited": gettext_lazy("too many opens in a row"),
    "contract_not_covering": gettext_lazy("no partner contract allows it"),
}
_ADMIN_CHANGES = {
    "resident": gettext_lazy("resident's data changed"),
    "residency": gettext_lazy("flat changed (move-in or move-out)"),
    "grant": gettext_lazy("access grant changed"),
    "vehicle": gettext_lazy("car changed"),
}


@dataclass
class TimelineRow:
    event: AuditEvent
    when: object
    what: str
    who: str
    tone: str  # "ok", "denied", "problem" or "info": the row's colour


def _who(event: AuditEvent, names: RefNames) -> str:
    for ref in (event.subject_ref, event.actor_ref):
        resident = names.residents.get(ref)
        if resident is not None:
            return resident_label(resident)
    if event.actor_kind == ActorKind.STAFF:
        return _("staff: %(name)s") % {"name": names.staff.get(event.actor_ref, _("another staff member"))}
    if event.actor_kind == ActorKind.PARTNER:
        if event.action == Action.ACCESS_DECISION:
            return _("a resident") if event.subject_ref else _("unknown")
        return names.partners.get(event.actor_ref, _("partner"))
    if event.actor_kind == ActorKind.RESIDENT:
        return _("a resident")
    return _("the system")


def _problem(event: AuditEvent) -> str:
    code = event.reason
    if code in _RESIDENT_REFUSALS:
        return str(_RESIDENT_REFUSALS[code])
    if code in _PARTNER_PROBLEMS:
        return str(_PARTNER_PROBLEMS[code])
    if code.startswith("partner_"):
        return _("the partner is unavailable")
    return code


def _decision(event: AuditEvent, device_kind: str | None) -> tuple[str, str]:
    try:
        reason = Reason(event.reason)
    except ValueError:
        reason = None
    text = str(REASON_TEXTS.get(reason, event.reason))
    if event.outcome == Outcome.SUCCESS:
        if device_kind == Device.Kind.BARRIER:
            return _("Car let through (%(reason)s)") % {"reason": text}, "ok"
        return _("Let in (%(reason)s)") % {"reason": text}, "ok"
    return _("Refused: %(reason)s") % {"reason": text}, "denied"


def describe(event: AuditEvent, *, names: RefNames, device_kinds: dict | None = None) -> TimelineRow:
    """One event as a row: `device_kinds` ({(building id, device ref): kind}) says whether a
    decision let a car or a person through."""
    kind = (device_kinds or {}).get((event.building_id, event.device_ref))
    ok = event.outcome == Outcome.SUCCESS
    action = event.action
    if action == Action.ACCESS_DECISION:
        what, tone = _decision(event, kind)
    elif action == Action.RESIDENT_OPEN:
        what, tone = ((_("Opened from the app"), "ok") if ok else
                      (_("Open from the app failed: %(why)s") % {"why": _problem(event)},
                       "denied" if event.outcome == Outcome.DENIED else "problem"))
    elif action == Action.STAFF_OPEN:
        if ok:
            stated = dict(StaffOpenReason.choices).get(event.reason, event.reason)
            what, tone = _("Opened remotely by staff: %(reason)s") % {"reason": stated}, "ok"
        else:
            what = _("Remote open by staff failed: %(why)s") % {"why": _problem(event)}
            tone = "denied" if event.outcome == Outcome.DENIED else "problem"
    elif action == Action.RESIDENT_VIDEO:
        what, tone = (_("Video from the door watched") if ok else _("Video could not start")), "info"
    elif action == Action.RESIDENT_GUEST_PASS_CREATE:
        what, tone = _("Guest pass created"), "info"
    elif action == Action.RESIDENT_GUEST_PASS_REVOKE:
        what, tone = _("Guest pass revoked"), "info"
    elif action in (Action.RESIDENT_VEHICLE_CREATE, Action.RESIDENT_VEHICLE_UPDATE, Action.RESIDENT_VEHICLE_DELETE):
        what, tone = str(Action(action).label).capitalize(), "info"
    elif action == Action.ADMIN_CHANGE:
        object_type = event.object_type
        what = str(_ADMIN_CHANGES.get(object_type, _("changed in the portal"))).capitalize()
        tone = "info"
    else:
        what, tone = str(Action(action).label).capitalize(), "info" if ok else "problem"
    return TimelineRow(event=event, when=timezone.localtime(event.occurred_at), what=what,
                       who=_who(event, names), tone=tone)
