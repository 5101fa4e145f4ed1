"""The fixed list of reasons an access rule answers with (access.policy), and how each caller says it.

Partners receive the `Reason` values themselves (documented in docs/partner-api.md); the resident
API turns them into its problem codes with `resident_code` (docs/api.md). Codes only: they never
carry personal data.
"""

from enum import StrEnum

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
    "no-grant": "You have no access to this device.",
    "grant-suspended": "Your access to this device is suspended.",
    "grant-expired": "Your access to this device has expired.",
    "grant-not-yet-valid": "Your access to this device has not started yet.",
    "residency-ended": "Your residency in this building has ended.",
    "outside-schedule": "Your access to this device is not valid at this time of day.",
    "contract-not-covering": "This operation is not available for this device.",
}


def resident_code(reason: Reason, *, starts_later: bool = False) -> str:
    """The resident API's code for a denial (`starts_later`: the grant has not started yet)."""
    if reason == Reason.GRANT_NOT_VALID:
        return "grant-not-yet-valid" if starts_later else "grant-expired"
    return _RESIDENT_CODES[reason]
