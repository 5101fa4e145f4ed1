"""RFC 9457 problem details: the one error shape of /api/ and /partner/.

Body: `{"type", "title", "status", "detail", "instance", "request_id"}` plus, for validation
errors (and a 409 conflict that names its field), `"errors": [{"field": "credential.type",
"code": "invalid_choice", "detail": "..."}]`.
Content type `application/problem+json`. DRF errors go through `exception_handler`; Django's
own 400/403/404/500 (unknown URL, CSRF, crash) go through the `handler*` views below, which
keep Django's HTML pages for the admin and other browser pages.

`title` and `detail` are in the request's language (Accept-Language; Russian by default,
settings.LANGUAGE_CODE); `type`, the `errors[].code` and every other field are machine codes
that never change with the language.
"""

import logging
from http import HTTPStatus

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

from core.http.problem_types import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES
from core.http.request_context import current_request_id

logger = logging.getLogger(__name__)

API_PREFIXES = ("/api/", "/partner/", "/o/")  # core/nginx.py answers its own errors there alike


# The titles of the statuses the service answers with (HTTP's reason phrases, translated).
TITLES = {
    400: gettext_lazy("Bad Request"),
    401: gettext_lazy("Unauthorized"),
    403: gettext_lazy("Forbidden"),
    404: gettext_lazy("Not Found"),
    405: gettext_lazy("Method Not Allowed"),
    406: gettext_lazy("Not Acceptable"),
    409: gettext_lazy("Conflict"),
    413: gettext_lazy("Request Entity Too Large"),
    415: gettext_lazy("Unsupported Media Type"),
    422: gettext_lazy("Unprocessable Entity"),
    429: gettext_lazy("Too Many Requests"),
    500: gettext_lazy("Internal Server Error"),
    502: gettext_lazy("Bad Gateway"),
    503: gettext_lazy("Service Unavailable"),
    504: gettext_lazy("Gateway Timeout"),
}


def problem_type(status: int, code: str | None = None) -> str:
    return f"/problems/{code or PROBLEM_TYPES.get(status, 'error')}"


def problem_title(status: int) -> str:
    """The status's title in the active language (HTTP's own phrase for a status not listed)."""
    return str(TITLES.get(status, HTTPStatus(status).phrase))


def problem_body(status: int, detail: str, *, request=None, code=None, errors=None, **extra) -> dict:
    body = {
        "type": problem_type(status, code),
        "title": problem_title(status),
        "status": status,
        "detail": str(detail),
    }
    if request is not None:
        body["instance"] = request.path
    body["request_id"] = current_request_id()
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def problem_response(status: int, detail: str, *, request=None, code=None, errors=None, headers=None, **extra):
    """A Django JsonResponse carrying a problem document."""
    response = JsonResponse(
        problem_body(status, detail, request=request, code=code, errors=errors, **extra),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
        json_dumps_params={"ensure_ascii": False},
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def flatten_errors(data, prefix: str = "") -> list[dict]:
    """DRF's nested error structure -> a flat list of {field, code, detail}."""
    out: list[dict] = []
    if isinstance(data, dict):
        for key, value in data.items():
            field = key if key != "non_field_errors" else ""
            out.extend(flatten_errors(value, f"{prefix}.{field}" if prefix and field else prefix or field))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            if isinstance(value, (dict, list)) and not isinstance(value, exceptions.ErrorDetail):
                out.extend(flatten_errors(value, f"{prefix}.{index}" if prefix else str(index)))
            else:
                out.extend(flatten_errors(value, prefix))
    else:
        out.append({"field": prefix, "code": getattr(data, "code", "invalid"), "detail": str(data)})
    return out


def exception_handler(exc, context):
    """DRF EXCEPTION_HANDLER: every API error becomes a problem document."""
    request = context.get("request")
    if isinstance(exc, RequestDataTooBig):
        return problem_response(413, _("The request body is too large."), request=request)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected error: Django logs it and handler500 answers
    status = response.status_code
    errors = getattr(exc, "problem_errors", None)  # {field, code, detail} of a problem that is not a 400
    code = getattr(exc, "problem_code", None)
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        detail = _("The request is not valid; see errors.")
    else:
        raw = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        detail = str(raw.get("detail", raw)) if isinstance(raw, dict) else str(raw)
    extra = getattr(exc, "problem_extra", None) or {}
    problem = problem_response(status, detail, request=request, code=code, errors=errors, **extra)
    for header in ("WWW-Authenticate", "Retry-After", "Allow"):
        if header in response:
            problem[header] = response[header]
    return problem


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIXES)


def handler400(request, exception=None):
    if _is_api(request):
        return problem_response(400, _("Bad request."), request=request)
    return defaults.bad_request(request, exception)


def handler403(request, exception=None):
    if _is_api(request):
        return problem_response(403, _("Permission denied."), request=request)
    return defaults.permission_denied(request, exception)


def handler404(request, exception=None):
    if _is_api(request):
        return problem_response(404, _("Not found."), request=request)
    return defaults.page_not_found(request, exception)


def handler500(request):
    if _is_api(request):
        return problem_response(500, _("Internal error; the request id identifies it in our logs."), request=request)
    return defaults.server_error(request)


def csrf_failure(request, reason=""):
    if _is_api(request):
        return problem_response(403, _("CSRF verification failed."), request=request, code="csrf-failed")
    return django_csrf_failure(request, reason)
