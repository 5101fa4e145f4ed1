"""The fixed list of reasons an access rule answers with (access.policy), and how each caller says it.

Partners receive the `Reason` values themselves (documented in docs/partner-api.md); the resident
API turns them into its problem codes with `resident_code` (docs/api.md). Codes only: they never
carry personal data.
"""

from enum import StrEnum

from django.db import models
from django.utils.translation import gettext_lazy as _

from core.api.resident import RESIDENT_SUSPENDED_DETAIL


class Reason(StrEnum):
    # allow
    GRANTED = "granted"  # a resident's grant covers the device now
    GUEST_PASS = "guest_pass"  # noqa: S105 - a reason code, not a secret. A resident's guest pass for this device
    # deny
    UNKNOWN_CREDENTIAL = "unknown_credential"  # no vehicle / guest pass / subject for this token
    CONTRACT_NOT_COVERING = "contract_not_covering"  # no active contract of this partner covers the building
    OPERATION_NOT_ALLOWED = "operation_not_allowed"  # the contract does not allow this operation
    NO_CONSENT = "no_consent"  # face: the resident has no active biometric consent for this partner
    RESIDENT_SUSPENDED = "resident_suspended"
    NO_GRANT = "no_grant"  # no grant of the resident covers this device
    GRANT_SUSPENDED = "grant_suspended"
    GRANT_NOT_VALID = "grant_not_valid"  # the grant has not started yet or has expired
    RESIDENCY_ENDED = "residency_ended"  # the grant belongs to a residency that is not current
    OUTSIDE_SCHEDULE = "outside_schedule"  # the grant's weekly schedule excludes this moment

    @property
    def allows(self) -> bool:
        return self in (Reason.GRANTED, Reason.GUEST_PASS)


DENY_REASONS = [reason for reason in Reason if not reason.allows]

# The resident API's problem codes (`/problems/<code>`, `reason`): the app explains them to the
# resident, so a grant that has not started is told apart from one that has ended, and the
# contract's two refusals are one ("this operation is not available for this device").
_RESIDENT_CODES = {
    Reason.CONTRACT_NOT_COVERING: "contract-not-covering",
    Reason.OPERATION_NOT_ALLOWED: "contract-not-covering",
    Reason.RESIDENT_SUSPENDED: "resident-suspended",
    Reason.NO_GRANT: "no-grant",
    Reason.GRANT_SUSPENDED: "grant-suspended",
    Reason.RESIDENCY_ENDED: "residency-ended",
    Reason.OUTSIDE_SCHEDULE: "outside-schedule",
}

RESIDENT_DETAILS = {
    "resident-suspended": RESIDENT_SUSPENDED_DETAIL,
    "no-grant": _("You have no access to this device."),
    "grant-suspended": _("Your access to this device is suspended."),
    "grant-expired": _("Your access to this device has expired."),
    "grant-not-yet-valid": _("Your access to this device has not started yet."),
    "residency-ended": _("Your residency in this building has ended."),
    "outside-schedule": _("Your access to this device is not valid at this time of day."),
    "contract-not-covering": _("This operation is not available for this device."),
}
# The same refusals told to staff about a resident (the portal's guest passes and timelines).
STAFF_DETAILS = {
    "resident-suspended": _("The resident is suspended."),
    "no-grant": _("The resident has no access to this device."),
    "grant-suspended": _("The resident's access to this device is suspended."),
    "grant-expired": _("The resident's access to this device has expired."),
    "grant-not-yet-valid": _("The resident's access to this device has not started yet."),
    "residency-ended": _("The resident's residency in this building has ended."),
    "outside-schedule": _("The resident's access is not valid at this time of day."),
    "contract-not-covering": _("No partner contract allows this operation for this device."),
}
# What each reason of an access decision means, for the portal's timelines and charts.
REASON_TEXTS = {
    Reason.GRANTED: _("resident's access"),
    Reason.GUEST_PASS: _("guest pass"),
    Reason.UNKNOWN_CREDENTIAL: _("unknown plate or face"),
    Reason.CONTRACT_NOT_COVERING: _("no contract for the building"),
    Reason.OPERATION_NOT_ALLOWED: _("not allowed by the contract"),
    Reason.NO_CONSENT: _("no consent to face recognition"),
    Reason.RESIDENT_SUSPENDED: _("resident suspended"),
    Reason.NO_GRANT: _("no access to this device"),
    Reason.GRANT_SUSPENDED: _("access suspended"),
    Reason.GRANT_NOT_VALID: _("access not valid now"),
    Reason.RESIDENCY_ENDED: _("moved out"),
    Reason.OUTSIDE_SCHEDULE: _("outside the schedule"),
}


class StaffOpenReason(models.TextChoices):
    """Why a staff member opens a door or barrier remotely (the reason of the `staff.open` event:
    a code, never free text - the audit log holds no free text)."""

    COURIER = "courier", _("courier or delivery")
    VISITOR = "visitor", _("visitor of a resident")
    SERVICE = "service", _("repair or maintenance crew")
    EMERGENCY = "emergency", _("emergency services")
    RESIDENT_LOCKED_OUT = "resident_locked_out", _("resident without a key or phone")
    OTHER = "other", _("other, recorded in the duty log")


def resident_code(reason: Reason, *, starts_later: bool = False) -> str:
    """The resident API's code for a denial (`starts_later`: the grant has not started yet)."""
    if reason == Reason.GRANT_NOT_VALID:
        return "grant-not-yet-valid" if starts_later else "grant-expired"
    return _RESIDENT_CODES[reason]
