"""The fixed list of reason codes an access decision answers with (documented for partners).

Codes only: they never carry personal data.
"""

from enum import StrEnum


class Reason(StrEnum):
    # allow
    GRANTED = "granted"  # a resident's grant covers the device now
    GUEST_PASS = "guest_pass"  # noqa: S105 - a reason code, not a secret. A resident's guest pass for this device
    # deny
    UNKNOWN_CREDENTIAL = "unknown_credential"  # no vehicle / guest pass / subject for this token
    CONTRACT_NOT_COVERING = "contract_not_covering"  # no active contract of this partner covers the building
    OPERATION_NOT_ALLOWED = "operation_not_allowed"  # the contract does not allow plate / face recognition
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
