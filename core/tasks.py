"""Project-level periodic tasks."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task
def heartbeat() -> str:
    """Prove the scheduler and worker are alive (visible in the logs)."""
    logger.info("scheduler heartbeat")
    return "ok"
