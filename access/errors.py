"""Domain errors of the access app. Selectors and services raise these; only the API layer
(access/api/errors.py) turns them into HTTP problems, and the admin into messages."""

from access.reasons import RESIDENT_DETAILS


class NotFound(Exception):
    """No such object - or not the caller's: the two are never told apart."""


class DeviceNotFound(NotFound):
    """The device is unknown, not the resident's, or belongs to another partner."""


class RuleDenied(Exception):
    """A rule of access.policy refuses the resident's operation on one of their devices.

    `code` is the resident API's code for the reason (access.reasons.resident_code)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code
        self.detail = RESIDENT_DETAILS[code]


class OpenInProgress(Exception):
    """An open request with this Idempotency-Key is still running."""


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was already used to open another device."""


class DeviceOffline(Exception):
    """The partner says the device is offline."""


class DecisionRateExceeded(Exception):
    """The partner is over its decision rate limit: nothing was decided, used up or audited."""

    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after


class StaffOpenRateExceeded(Exception):
    """A staff member opened devices more often than STAFF_OPEN_RATE allows; nothing was opened."""

    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after


class FactsChanged(Exception):
    """A decision ran on the change-log batch its process read last (core.cache.versioned
    .assume_unchanged) and a change has committed since: nothing was written or used up. Read the
    log (`versioned.refresh()`), check the caller again and decide again."""
