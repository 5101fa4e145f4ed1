"""Run the beat schedule in-process, for the embedded (no broker) mode.

With REDIS_URL set, use `celery -A smarthome beat` and a worker instead. Here each due task is
executed right away in this process (`apply()`), so one machine needs no broker at all. Every
task runs once at start, then on its schedule.
"""

import logging
import time
from datetime import UTC, datetime, timedelta

from celery.schedules import maybe_schedule
from django.conf import settings
from django.core.management.base import BaseCommand

from smarthome.celery import app

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the Celery beat schedule in-process (embedded mode without a broker)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="run every task once and exit")

    def handle(self, *args, once=False, **options):
        app.loader.import_default_modules()
        entries = {
            name: (entry["task"], maybe_schedule(entry["schedule"]))
            for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        }
        long_ago = datetime.now(UTC) - timedelta(days=366)
        last_run = dict.fromkeys(entries, long_ago)
        self.stdout.write(f"embedded scheduler: {len(entries)} periodic tasks")
        while True:
            next_check_s = 30.0
            for name, (task_name, schedule) in entries.items():
                due, next_s = schedule.is_due(last_run[name])
                if due:
                    last_run[name] = datetime.now(UTC)
                    result = app.tasks[task_name].apply()
                    if result.failed():
                        logger.error("periodic task failed", extra={"task": task_name})
                next_check_s = min(next_check_s, max(float(next_s), 1.0))
            if once:
                return
            time.sleep(next_check_s)
