"""Reactions of the access app to what lower apps announce (they cannot import us)."""

from django.dispatch import receiver

from partners.signals import partner_scope_changed


@receiver(partner_scope_changed)
def rebuild_plate_tokens(sender, *, partner_id: int, **kwargs):
    from access.services import plate_tokens_rebuild

    plate_tokens_rebuild(partner_id=partner_id)
