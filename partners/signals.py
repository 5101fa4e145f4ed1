"""Signals the partners app sends for apps above it (it must not import them).

`partner_scope_changed(partner_id=...)`: a partner's contracts or current credentials changed,
so whatever is derived from them (the access app's plate tokens) must be recomputed. Sent
inside the service's transaction; receivers run in it too.
"""

from django.dispatch import Signal

partner_scope_changed = Signal()

# `outbox_delivered(operation=, partner_id=, ordering_key=, idempotency_key=, message_id=, result=)`:
# the partner acknowledged an outbox message (`result` summarises its answer, e.g. the
# face_delete's deletion_id). Sent inside the delivery's transaction, so a receiver that
# records a receipt commits with the "delivered" status or neither happens.
outbox_delivered = Signal()

# `partner_event_received(partner_id=, event_type=, data=, occurred_at=, webhook_id=)`: a partner's
# verified, first-seen event of a known type (partners.webhooks.KNOWN_EVENT_TYPES). `data` holds
# pseudonymous ids and codes only (device_ref, subject_id, decision_id, reason, ...). Sent inside
# the transaction that stores the webhook: a receiver that raises rolls it back, and the partner
# gets a 500 and retries.
partner_event_received = Signal()

# `partner_reinstated(partner_id=, actor_ref=)`: a security admin lifted the partner's suspension
# (partners.services.partner_reinstate), inside its transaction.
partner_reinstated = Signal()

# `plate_keys_retired(partner_id=, versions=)`: decisions must stop accepting plate tokens under
# the plate-token keys of these credentials versions (retired explicitly, by an emergency or a
# later rotation, or at the end of their overlap). Sent inside the retiring transaction, so the
# tokens go with it: an old-key token is unknown from the moment the retirement commits.
plate_keys_retired = Signal()

# `partner_breaker_closed(partner_id=)`: a partner's circuit breaker closed again (a probe got
# through), as seen by this process (partners.client.breaker). Sent inside the caller's
# transaction, if any: the outbox then sends what waited for the partner.
partner_breaker_closed = Signal()
