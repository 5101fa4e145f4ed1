"""Reactions of the access app to what lower apps announce (they cannot import us).

- partner_scope_changed (a partner's contracts or credentials): plate tokens are recomputed and
  the partner's sites get a full allowlist push (new keys mean new tokens; a building added or
  removed changes what the partner may decide);
- face_subjects_revoked (consent): the subjects leave the partner's allowlists (a patch);
- outbox_delivered of a face_put (the partner acknowledged an enrolment; consent's own receiver,
  connected earlier since consent precedes access in INSTALLED_APPS, has marked it delivered):
  the subject joins the partner's allowlists (a patch);
- partner_reinstated: the partner's open security alerts are resolved.
"""

from django.dispatch import receiver

from consent.signals import face_subjects_revoked
from partners.signals import outbox_delivered, partner_reinstated, partner_scope_changed


@receiver(partner_scope_changed)
def rebuild_plate_tokens(sender, *, partner_id: int, **kwargs):
    from access.services import plate_tokens_rebuild
    from access.services.allowlist import allowlist_push_partner_sites

    plate_tokens_rebuild(partner_id=partner_id)
    allowlist_push_partner_sites(partner_id=partner_id)


@receiver(face_subjects_revoked, dispatch_uid="access.allowlist_face_revoked")
def allowlist_face_revoked(sender, *, partner_id: int, resident_id: int, subject_ids, **kwargs):
    from access.services.allowlist import Credential, allowlist_resident_changed

    allowlist_resident_changed(
        resident_id=resident_id, partner_ids={partner_id},
        removed={Credential(partner_id, "face", subject_id) for subject_id in subject_ids},
    )


@receiver(outbox_delivered, dispatch_uid="access.allowlist_face_enrolled")
def allowlist_face_enrolled(sender, *, operation: str, partner_id: int, message_id: int, **kwargs):
    if operation != "face_put":
        return
    from access.services.allowlist import allowlist_resident_changed
    from consent.models import FaceEnrolment

    resident_id = (FaceEnrolment.objects.filter(outbox_message_id=message_id, partner_id=partner_id)
                   .values_list("resident_id", flat=True).first())
    if resident_id is not None:
        allowlist_resident_changed(resident_id=resident_id, partner_ids={partner_id})


@receiver(partner_reinstated)
def resolve_security_alerts(sender, *, partner_id: int, actor_ref: str, **kwargs):
    """A reinstatement resolves the partner's open security alerts (same transaction)."""
    from django.utils import timezone

    from access.models import SecurityAlert

    SecurityAlert.objects.filter(partner_id=partner_id, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=actor_ref
    )
