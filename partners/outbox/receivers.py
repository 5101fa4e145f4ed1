"""What the outbox does when the client tells it a partner is back (connected in PartnersConfig.ready)."""

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def partner_breaker_closed_receiver(sender, partner_id: int, **kwargs) -> None:
    """`partner_breaker_closed`: after the caller's transaction (the probe's delivery, or none),
    a task sends what waited for the partner (outbox_partner_recovered) - a task, so that the
    caller (a resident's request that happened to probe) is not held up by it."""
    transaction.on_commit(lambda: _send(partner_id))


def _send(partner_id: int) -> None:
    from partners.tasks import outbox_partner_recovered  # lazy: partners.tasks imports the outbox

    try:
        outbox_partner_recovered.delay(partner_id)
    except Exception:  # the broker is down: the dispatcher sends the messages as they come due
        logger.warning("could not send the outbox recovery task", extra={"partner_id": partner_id}, exc_info=True)
