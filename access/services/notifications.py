"""Notifications for residents: events a partner reported that concern them."""

from __future__ import annotations

import datetime
import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from access.models import Notification

KIND = re.compile(r"^[a-z][a-z0-9_.]{0,47}$")
_SAFE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9:._+-]{0,64}$")
PERSONAL_KEYS = {"name", "full_name", "phone", "email", "plate", "photo", "face", "image", "token", "address"}


def _check_data(data: dict) -> None:
    if not isinstance(data, dict) or len(data) > 16:
        raise ValidationError({"data": ValidationError("data is an object of at most 16 codes.", code="data_shape")})
    for key, value in data.items():
        if not isinstance(key, str) or not _SAFE_KEY.match(key) or key in PERSONAL_KEYS:
            raise ValidationError({"data": ValidationError(f"key {key!r} is not allowed.", code="data_key")})
        if isinstance(value, bool) or value is None or isinstance(value, int):
            continue
        if not isinstance(value, str) or not _SAFE_VALUE.match(value):
            raise ValidationError({"data": ValidationError(f"value of {key!r} is not a code.", code="data_value")})


@transaction.atomic
def notification_create(
    *, resident_id: int, kind: str, device_id: int | None = None, occurred_at: datetime.datetime,
    data: dict | None = None,
) -> Notification:
    """Store a notification for a resident (e.g. from a partner webhook receiver).

    Checks: `kind` is a code ([a-z0-9_.]); `data` holds only codes, numbers and booleans under
    keys that are not personal-data names (no names, phones, plates, photos, tokens).
    No audit event: the webhook receiver records the inbound event.
    """
    if not KIND.match(kind or ""):
        raise ValidationError({"kind": ValidationError("kind must be a code.", code="kind")})
    data = data or {}
    _check_data(data)
    notification = Notification(
        resident_id=resident_id, kind=kind, device_id=device_id, occurred_at=occurred_at, data=data
    )
    notification.full_clean()
    notification.save()
    return notification


def notification_mark_read(*, notification: Notification, at: datetime.datetime | None = None) -> Notification:
    """Mark read (idempotent: the first read time stays)."""
    if notification.read_at is None:
        notification.read_at = at or timezone.now()
        notification.save(update_fields=["read_at"])
    return notification
