"""What a partner call can end in, as types callers can act on.

    PartnerError                      any failed call (reason: a short machine code)
    ├── PartnerUnavailable            the partner cannot be used now; try later (retry_after_s)
    │   ├── CircuitOpen               our breaker for this partner is open: nothing was sent
    │   ├── PartnerTimeout            connect or read timeout
    │   ├── PartnerConnectionError    refused, reset, DNS
    │   ├── PartnerTLSError           handshake failed (certificate not trusted / refused)
    │   ├── PartnerServerError        5xx after the retries the operation allows
    │   └── RateLimited               429 with a Retry-After longer than we may wait
    └── PartnerRejected               4xx: the partner understood and refused; retrying won't help
        └── PartnerAuthError          401 even after one token refresh, or our client refused

`PartnerUnavailableProblem` is what a DRF view raises for any `PartnerUnavailable`: 503 with
``Retry-After`` and problem code ``partner-unavailable`` (see core.http.problems).
"""

from __future__ import annotations

import math

from django.utils.translation import gettext_lazy
from rest_framework.exceptions import APIException


class PartnerError(Exception):
    """A failed call to a partner. Never carries tokens, bodies or personal data."""

    reason = "error"

    def __init__(
        self,
        message: str = "",
        *,
        operation: str = "",
        partner: str = "",
        reason: str | None = None,
        http_status: int | None = None,
        request_id: str = "",
    ):
        self.operation = operation
        self.partner = partner
        if reason is not None:
            self.reason = reason
        self.http_status = http_status
        self.request_id = request_id
        self.attempts = 0  # HTTP attempts the call made (set by the client)
        super().__init__(message or f"partner {partner or '?'} {operation or 'call'} failed: {self.reason}")


class PartnerUnavailable(PartnerError):
    """The partner cannot serve us now; `retry_after_s` says when trying again makes sense."""

    reason = "unavailable"

    def __init__(self, message: str = "", *, retry_after_s: float = 1.0, **kwargs):
        self.retry_after_s = max(1, math.ceil(retry_after_s))
        super().__init__(message, **kwargs)


class CircuitOpen(PartnerUnavailable):
    reason = "breaker_open"


class PartnerTimeout(PartnerUnavailable):
    reason = "timeout"


class PartnerConnectionError(PartnerUnavailable):
    reason = "connection"


class PartnerTLSError(PartnerUnavailable):
    reason = "tls"


class PartnerServerError(PartnerUnavailable):
    reason = "http_5xx"


class RateLimited(PartnerUnavailable):
    reason = "rate_limited"


class PartnerRejected(PartnerError):
    """4xx: the request itself was refused; `error_code` is the partner's ``error`` field."""

    reason = "rejected"

    def __init__(self, message: str = "", *, error_code: str = "", **kwargs):
        self.error_code = error_code
        super().__init__(message, **kwargs)


class PartnerAuthError(PartnerRejected):
    reason = "unauthorized"


class PartnerUnavailableProblem(APIException):
    """Raise from a view when a partner call failed with `PartnerUnavailable`: 503 + Retry-After."""

    status_code = 503
    default_detail = gettext_lazy("The partner platform is unavailable; try again later.")
    default_code = "partner_unavailable"
    problem_code = "partner-unavailable"

    def __init__(self, error: PartnerUnavailable | None = None, detail: str | None = None):
        super().__init__(detail)
        # DRF's exception handler turns `wait` into the Retry-After header.
        self.wait = error.retry_after_s if error is not None else 1
        self.problem_extra = {"retry_after_s": self.wait}
        if error is not None:
            self.problem_extra["reason"] = error.reason
