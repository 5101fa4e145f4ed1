"""Structured JSON logs that carry the request id and never personal data or secrets.

`RedactingFilter` is the safety net under the rule "never log it in the first place": it
blanks values under sensitive keys and masks anything that looks like a token, secret,
e-mail, phone number, Russian licence plate, Cyrillic full name or an encoded blob, in the
message, its arguments, extra fields and exception text. Query strings are dropped from every
URL or path it sees (`/admin/access/vehicle/?q=...` -> `/admin/access/vehicle/?[REDACTED]`):
they carry search terms and, from careless clients, tokens. A request object in a record
(Django's error log passes one) is written as its method and path only.

Identifiers we make ourselves - UUIDs (Celery task ids) and long hex strings (request ids,
fingerprints) - are kept whole: the patterns for plates and phones are not applied inside them.
"""

import logging
import re

from django.http import HttpRequest
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from core.http.request_context import actor_ref_var, request_id_var

REDACTED = "[REDACTED]"

# Keys whose values are never written, whatever they look like.
SENSITIVE_KEY = re.compile(
    r"(pass(word)?|secret|token|authori[sz]ation|cookie|session|api[_-]?key|private|"
    r"signature|phone|e?mail|full_?name|first_?name|last_?name|surname|plate|photo|image|sdp)",
    re.IGNORECASE,
)
# Keys written as they are: they are produced by us and hold no personal data.
SAFE_KEYS = frozenset({"request_id", "actor", "method", "route", "status", "duration_ms", "logger", "level"})

_PLATE_LETTERS = "ABEKMHOPCTYXАВЕКМНОРСТУХ"
# Secrets: masked wherever they appear, identifiers included.
_SECRET_PATTERNS = [
    # key=value / "key": "value" pairs naming a secret: keep the key, drop the value
    (
        re.compile(
            r"(?i)\b(password|passwd|secret|client_secret|token|access_token|refresh_token|api[_-]?key|"
            r"authorization)(\"?'?\s*[:=]\s*\"?'?)([^\s\"'&,;}]+)"
        ),
        r"\1\2" + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),  # JWT / JWS
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"), REDACTED),
    (re.compile(r"-----BEGIN [A-Z ]+-----[\s\S]*?-----END [A-Z ]+-----"), REDACTED),
    (re.compile(r"[A-Za-z0-9+/_-]{120,}={0,2}"), REDACTED),  # photos, JWE, long keys
    # the query string of a URL or path: search terms, and tokens from careless clients
    (re.compile(r"((?:https?://[^\s/?#'\"<>]+)?/[^\s?#'\"<>]*)\?[^\s#'\"<>]+"), r"\1?" + REDACTED),
]
# Our own identifiers, which the personal-data patterns below must not cut into.
_IDENTIFIER = re.compile(
    r"(?<![\w-])(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{16,})(?![\w-])",
    re.IGNORECASE,
)
# Personal data: masked outside our identifiers.
_PERSONAL_PATTERNS = [
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), REDACTED),  # e-mail
    (re.compile(r"(?<![\w])\+?[78][\s(-]*\d{3}[\s)-]*\d{3}[\s-]*\d{2}[\s-]*\d{2}(?!\d)"), REDACTED),  # RU phone
    (re.compile(r"(?<![\w])\+\d[\d\s()-]{8,}\d(?!\d)"), REDACTED),  # other phone
    # Russian plates: private (А123ВС77), taxi (АВ12377), trailer (АВ123477), motorcycle (1234АВ77)
    (
        re.compile(
            rf"(?i)(?<![\w])([{_PLATE_LETTERS}][\s-]?\d{{3}}[\s-]?[{_PLATE_LETTERS}]{{2}}|"
            rf"[{_PLATE_LETTERS}]{{2}}[\s-]?\d{{3,4}}|\d{{4}}[\s-]?[{_PLATE_LETTERS}]{{2}})[\s-]?\d{{2,3}}(?![\w])"
        ),
        REDACTED,
    ),
    (re.compile(r"\b[А-ЯЁ][а-яё]+(\s+[А-ЯЁ][а-яё]+){1,2}\b"), REDACTED),  # Cyrillic full names
]


def _redact_personal(text: str) -> str:
    for pattern, replacement in _PERSONAL_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_text(text: str) -> str:
    """Mask everything in `text` that looks like a secret or personal data; drop query strings."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    pieces, kept = [], 0
    for identifier in _IDENTIFIER.finditer(text):
        pieces.append(_redact_personal(text[kept:identifier.start()]))
        pieces.append(identifier.group())
        kept = identifier.end()
    pieces.append(_redact_personal(text[kept:]))
    return "".join(pieces)


def describe_request(request: HttpRequest) -> str:
    """A request as a log line may show it: class, method and path - never the query string."""
    return f"<{type(request).__name__}: {request.method} {request.path!r}>"


def redact_value(key: str, value):
    if key in SAFE_KEYS:
        return value
    if SENSITIVE_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(key, v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, HttpRequest):
        return redact_text(describe_request(value))
    return redact_text(str(value))


_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Rewrites each record so that no secret or personal data reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the event
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        for key in list(record.__dict__):
            if key not in _STANDARD_ATTRS:
                record.__dict__[key] = redact_value(key, record.__dict__[key])
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
            record.exc_info = None
        return True


class RequestIdFilter(logging.Filter):
    """Adds the current request id and actor ref to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "actor"):
            record.actor = actor_ref_var.get()
        return True


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_record, record, message_dict):
        super().add_fields(log_record, record, message_dict)
        if record.exc_text and "exc_info" not in log_record:
            log_record["exc_info"] = record.exc_text
