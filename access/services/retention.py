"""How long residents' activity records stay: remote opens, notifications, and guest passes that
have ended (expired or revoked) are deleted once older than their retention period - settings
OPEN_REQUEST_RETENTION_DAYS, NOTIFICATION_RETENTION_DAYS and GUEST_PASS_RETENTION_DAYS (0 keeps
them until the resident is erased). What the audit log holds of them (opens, pass decisions) is
kept by its own rule (`prune_audit`); docs/privacy.md lists every period.
"""

import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from access.models import GuestPass, Notification, OpenRequest
from audit.actions import Action, Outcome
from audit.services import record

_BATCH = 5000  # rows deleted per statement


def _delete(queryset) -> int:
    deleted = 0
    while ids := list(queryset.values_list("pk", flat=True)[:_BATCH]):
        deleted += queryset.model.objects.filter(pk__in=ids).delete()[1].get(queryset.model._meta.label, 0)
    return deleted


@transaction.atomic
def activity_prune(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Delete the opens and notifications created, and the guest passes ended (their end, or their
    revocation), more than their retention days before `now` (default: now). Records
    `retention.pruned` for each kind that lost rows (object type: the kind; reason: how many, and
    the days kept). Returns {kind: rows deleted}."""
    now = now or timezone.now()

    def before(days: int) -> datetime.datetime:
        return now - datetime.timedelta(days=days)

    kinds = {
        "open_request": (settings.OPEN_REQUEST_RETENTION_DAYS,
                         lambda cutoff: OpenRequest.objects.filter(created_at__lt=cutoff)),
        "notification": (settings.NOTIFICATION_RETENTION_DAYS,
                         lambda cutoff: Notification.objects.filter(created_at__lt=cutoff)),
        "guest_pass": (settings.GUEST_PASS_RETENTION_DAYS,
                       lambda cutoff: GuestPass.objects.filter(Q(valid_until__lt=cutoff) | Q(revoked_at__lt=cutoff))),
    }
    deleted = {}
    for kind, (days, old) in kinds.items():
        deleted[kind] = _delete(old(before(days))) if days > 0 else 0
        if deleted[kind]:
            record(action=Action.RETENTION_PRUNED, outcome=Outcome.SUCCESS, object_type=kind,
                   reason=f"n{deleted[kind]}.d{days}")
    return deleted
