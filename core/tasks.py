"""Project-level periodic tasks."""

import logging

from celery import shared_task

from core.cache.versioned import changes_prune

logger = logging.getLogger(__name__)


@shared_task
def heartbeat() -> str:
    """Prove the scheduler and worker are alive (visible in the logs)."""
    logger.info("scheduler heartbeat")
    return "ok"


@shared_task
def data_changes_prune() -> int:
    """Delete the caches' change log older than versioned.CHANGES_KEPT_S (core.cache.versioned)."""
    return changes_prune()
