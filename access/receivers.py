"""Reactions of the access app to what lower apps announce (they cannot import us).

Every reaction, its order and its transaction are listed in docs/architecture.md ("When data
changes"). Here:

- partners.partner_scope_changed (a partner's contracts or credentials changed): once that has
  committed, the task `partner_scope_refresh` rebuilds the partner's plate tokens and then pushes
  the full allowlist of each of its sites (access.services.plate_tokens);
- partners.plate_keys_retired (a previous plate-token key retired): its plate tokens go and
  guest passes drop their tokens under it, in the retiring transaction (`plate_tokens_retire`);
- consent.face_subjects_revoked (a consent revoked): the subjects leave the partner's allowlists
  (a patch, in the revocation's transaction);
- consent.face_subject_enrolled (the partner acknowledged an enrolment, which consent has just
  marked delivered): the subject joins the partner's allowlists (a patch, in the delivery's
  transaction);
- partners.partner_reinstated: the partner's open security alerts are resolved (in the
  reinstatement's transaction).

The partner's device events are access.receivers_partner_events'.
"""

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from access.models import SecurityAlert
from access.services.allowlist import Credential, allowlist_resident_changed
from access.services.plate_tokens import plate_tokens_retire
from access.tasks import partner_scope_refresh
from consent.signals import face_subject_enrolled, face_subjects_revoked
from partners.signals import partner_reinstated, partner_scope_changed, plate_keys_retired


@receiver(partner_scope_changed, dispatch_uid="access.partner_scope_refresh")
def refresh_partner_scope(sender, *, partner_id: int, **kwargs):
    transaction.on_commit(lambda: partner_scope_refresh.delay(partner_id))


@receiver(plate_keys_retired, dispatch_uid="access.plate_tokens_retire")
def retire_plate_tokens(sender, *, partner_id: int, versions, **kwargs):
    plate_tokens_retire(partner_id=partner_id, versions=versions)


@receiver(face_subjects_revoked, dispatch_uid="access.allowlist_face_revoked")
def allowlist_face_revoked(sender, *, partner_id: int, resident_id: int, subject_ids, **kwargs):
    allowlist_resident_changed(
        resident_id=resident_id, partner_ids={partner_id},
        removed={Credential(partner_id, "face", subject_id) for subject_id in subject_ids},
    )


@receiver(face_subject_enrolled, dispatch_uid="access.allowlist_face_enrolled")
def allowlist_face_enrolled(sender, *, partner_id: int, resident_id: int, **kwargs):
    allowlist_resident_changed(resident_id=resident_id, partner_ids={partner_id})


@receiver(partner_reinstated, dispatch_uid="access.resolve_security_alerts")
def resolve_security_alerts(sender, *, partner_id: int, actor_ref: str, **kwargs):
    SecurityAlert.objects.filter(partner_id=partner_id, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=actor_ref
    )
