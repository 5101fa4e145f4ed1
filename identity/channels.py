"""How a one-time link reaches a resident: e-mail (Django's mail backends: SMTP in production,
the console in development) or SMS through a small gateway interface.

An SMS gateway is a class with `send(*, to: str, text: str) -> None` that raises
`DeliveryFailed` when the message was not accepted; IDENTITY_SMS_BACKEND names it (dotted path).
Two ship here for development: the console (prints) and a file per message (IDENTITY_SMS_FILE_DIR).
A production gateway (the operator's HTTP API) is one such class in the deployment's code.
"""

import json
import secrets
import sys
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import timezone
from django.utils.module_loading import import_string


class DeliveryFailed(Exception):
    """The channel did not accept the message."""


class ConsoleSmsGateway:
    """Development: prints each message to standard output (`make run` shows the link)."""

    def send(self, *, to: str, text: str) -> None:
        sys.stdout.write(f"--- SMS to {to} ---\n{text}\n---\n")
        sys.stdout.flush()


class FileSmsGateway:
    """Development and tests: writes each message as a JSON file into IDENTITY_SMS_FILE_DIR."""

    def send(self, *, to: str, text: str) -> None:
        directory = Path(settings.IDENTITY_SMS_FILE_DIR)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{timezone.now():%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}.json"
        path = directory / name
        path.write_text(json.dumps({"to": to, "text": text}, ensure_ascii=False))
        path.chmod(0o600)


def sms_gateway():
    return import_string(settings.IDENTITY_SMS_BACKEND)()


def send_sms(*, to: str, text: str) -> None:
    try:
        sms_gateway().send(to=to, text=text)
    except DeliveryFailed:
        raise
    except Exception as exc:  # a gateway's own error: the caller records a failed delivery
        raise DeliveryFailed(type(exc).__name__) from exc


def send_email(*, to: str, subject: str, body: str, connection=None) -> None:
    message = EmailMessage(subject=subject, body=body, to=[to], connection=connection)
    try:
        message.send(fail_silently=False)
    except Exception as exc:  # SMTP refusals, timeouts, TLS errors
        raise DeliveryFailed(type(exc).__name__) from exc


def email_connection():
    """One connection for a batch of messages (closed by the caller)."""
    return get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT)
