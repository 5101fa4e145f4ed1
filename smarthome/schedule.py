"""The Celery beat schedule, in one place.

Each app adds its periodic tasks here; `manage.py run_scheduler` runs the same table
in-process when there is no broker (the embedded default).
"""

import os
from datetime import timedelta

BEAT_SCHEDULE: dict[str, dict] = {
    "smarthome-heartbeat": {
        "task": "core.tasks.heartbeat",
        "schedule": timedelta(minutes=1),
    },
    "core-data-changes-prune": {
        "task": "core.tasks.data_changes_prune",
        "schedule": timedelta(minutes=10),
    },
    "audit-seal": {
        "task": "audit.tasks.seal",
        "schedule": timedelta(minutes=1),
    },
    "audit-verify": {
        "task": "audit.tasks.verify",
        "schedule": timedelta(days=1),
    },
    "audit-reconcile-partners": {
        "task": "audit.tasks.reconcile_partners",
        "schedule": timedelta(days=1),
    },
    "partners-outbox-dispatch": {
        "task": "partners.tasks.outbox_dispatch_due",
        "schedule": timedelta(seconds=float(os.environ.get("OUTBOX_DISPATCH_INTERVAL_S", "15"))),
    },
    "partners-plate-keys-retire": {
        "task": "partners.tasks.plate_keys_retire_overlap_ended",
        "schedule": timedelta(minutes=5),  # an old plate key outlives its overlap by 5 minutes at most
    },
    "consent-expire-due": {
        "task": "consent.tasks.expire_due_consents",
        "schedule": timedelta(minutes=5),
    },
    "access-move-outs-due": {
        "task": "access.tasks.move_outs_due_daily",
        "schedule": timedelta(hours=1),  # hourly: a move-out takes effect within the hour of its day
    },
    "identity-signin-floods-flush": {
        "task": "identity.tasks.signin_floods_flush",
        "schedule": timedelta(minutes=1),
    },
    "access-activity-prune": {
        "task": "access.tasks.activity_prune_daily",
        "schedule": timedelta(days=1),
    },
    "access-allowlist-push-nightly": {
        "task": "access.tasks.allowlist_push_nightly",
        "schedule": timedelta(days=1),
    },
}
