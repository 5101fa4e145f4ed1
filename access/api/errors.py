"""The access app's domain errors (access.errors) as HTTP problem documents of the resident API."""

from django.utils.translation import gettext_lazy
from rest_framework import exceptions

from access import errors


class ResidentRuleDenied(exceptions.PermissionDenied):
    """403 problem `/problems/<code>` with `reason`: a rule refused the operation on one of your devices."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.reason = code
        self.problem_code = code
        self.problem_extra = {"reason": code}


class OpenInProgress(exceptions.APIException):
    status_code = 409
    default_detail = gettext_lazy("An open request with this Idempotency-Key is still in progress.")
    default_code = "open_in_progress"
    problem_code = "open-in-progress"


class IdempotencyKeyReused(exceptions.APIException):
    status_code = 422
    default_detail = gettext_lazy("This Idempotency-Key was already used for another device.")
    default_code = "idempotency_key_reused"
    problem_code = "idempotency-key-reused"


class DeviceOffline(exceptions.APIException):
    status_code = 409
    default_detail = gettext_lazy("The device is offline.")
    default_code = "device_offline"
    problem_code = "device-offline"


def rule_denied(code: str) -> ResidentRuleDenied:
    error = errors.RuleDenied(code)
    return ResidentRuleDenied(error.code, error.detail)


def as_problem(exc: Exception) -> Exception:
    """The API exception for a domain error (others are returned unchanged)."""
    if isinstance(exc, errors.NotFound):
        return exceptions.NotFound()
    if isinstance(exc, errors.RuleDenied):
        return ResidentRuleDenied(exc.code, exc.detail)
    if isinstance(exc, errors.OpenInProgress):
        return OpenInProgress()
    if isinstance(exc, errors.IdempotencyKeyReused):
        return IdempotencyKeyReused()
    if isinstance(exc, errors.DeviceOffline):
        return DeviceOffline()
    return exc
