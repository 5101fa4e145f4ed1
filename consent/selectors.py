"""Reads of the consent app."""

from django.db.models import QuerySet
from django.utils import timezone

from consent.models import FACE_PURPOSE, Consent, DeletionReceipt, FaceEnrolment
from partners.models import OutboxMessage


def face_consent_ends(*, resident_id: int, partner_id: int) -> tuple:
    """When each unrevoked biometric consent of the resident for this partner expires (its
    `retention_until`); active now iff one of them is in the future. Facts a cache may keep."""
    return tuple(
        Consent.objects.filter(
            resident_id=resident_id, partner_id=partner_id, purpose=FACE_PURPOSE, revoked_at__isnull=True
        ).values_list("retention_until", flat=True)
    )


def resident_id_for_subject(*, partner_id: int, subject_id: str) -> int | None:
    """The resident a partner knows by `subject_id` (pairwise pseudonym), or None."""
    return (
        FaceEnrolment.objects.filter(partner_id=partner_id, subject_id=subject_id)
        .order_by("-id").values_list("resident_id", flat=True).first()
    )


def consent_list(*, resident_id: int) -> QuerySet[Consent]:
    return Consent.objects.filter(resident_id=resident_id).select_related("text", "partner")


def enrolment_list(*, resident_id: int) -> list[FaceEnrolment]:
    """The resident's enrolments; a pending one whose outbox message was dead-lettered shows as failed."""
    enrolments = list(
        FaceEnrolment.objects.filter(resident_id=resident_id).select_related("outbox_message", "partner")
    )
    for enrolment in enrolments:
        message = enrolment.outbox_message
        if (enrolment.status == FaceEnrolment.Status.PENDING and message is not None
                and message.status == OutboxMessage.Status.DEAD):
            enrolment.status = FaceEnrolment.Status.FAILED
    return enrolments


def deletion_receipts_for(*, resident_id: int) -> QuerySet[DeletionReceipt]:
    pairs = FaceEnrolment.objects.filter(resident_id=resident_id).values_list("partner_id", "subject_id")
    subjects = {s for _p, s in pairs}
    return DeletionReceipt.objects.filter(subject_id__in=subjects)


def consents_due_for_expiry(at=None) -> QuerySet[Consent]:
    at = at or timezone.now()
    return Consent.objects.filter(revoked_at__isnull=True, retention_until__lte=at)
