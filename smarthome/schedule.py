"""The Celery beat schedule, in one place.

Each app adds its periodic tasks here; `manage.py run_scheduler` runs the same table
in-process when there is no broker (the embedded default).
"""

from datetime import timedelta

BEAT_SCHEDULE: dict[str, dict] = {
    "smarthome-heartbeat": {
        "task": "smarthome.tasks.heartbeat",
        "schedule": timedelta(minutes=1),
    },
}
