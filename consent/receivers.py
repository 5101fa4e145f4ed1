"""Receivers of the partners app's `outbox_delivered`: enrolment acks and deletion receipts.

They run inside the delivery's transaction, so the receipt commits with the "delivered" status.
"""

from django.utils import timezone

from audit.actions import Action, Outcome
from audit.services import record
from consent.models import DeletionReceipt, FaceEnrolment

FACE_KEY_PREFIX = "face:"


def on_outbox_delivered(sender, *, operation, partner_id, ordering_key, message_id, result, **kwargs):
    if operation == "face_put":
        FaceEnrolment.objects.filter(outbox_message_id=message_id, status=FaceEnrolment.Status.PENDING).update(
            status=FaceEnrolment.Status.DELIVERED, updated_at=timezone.now()
        )
    elif operation == "face_delete" and ordering_key.startswith(FACE_KEY_PREFIX):
        subject_id = ordering_key.removeprefix(FACE_KEY_PREFIX)
        receipt, created = DeletionReceipt.objects.get_or_create(
            outbox_message_id=message_id,
            defaults={"partner_id": partner_id, "subject_id": subject_id,
                      "deletion_id": str(result.get("deletion_id", ""))},
        )
        FaceEnrolment.objects.filter(
            partner_id=partner_id, subject_id=subject_id, status=FaceEnrolment.Status.DELETING
        ).update(status=FaceEnrolment.Status.DELETED, updated_at=timezone.now())
        if created:
            record(
                action=Action.BIOMETRIC_DELETE_RECEIPT, outcome=Outcome.SUCCESS, partner_id=partner_id,
                object_type="deletion_receipt", object_ref=f"deletion_receipt:{receipt.pk}",
                reason="partner_confirmed",
            )
