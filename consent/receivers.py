"""Receivers of the partners app's signals: enrolment acks and deletion receipts.

- `outbox_delivered` (face_put / face_delete acknowledged): inside the delivery's transaction,
  so the receipt commits with the "delivered" status; a delivered enrolment is then announced
  with `face_subject_enrolled` (the access app lists the subject in the partner's allowlists);
- `partner_event_received` (the partner's signed events): `enrolment.completed` makes a
  pending/delivered enrolment `active`, `enrolment.failed` makes it `failed`, `subject.deleted`
  marks the subject's enrolments `deleted` and stores a deletion receipt for our face_delete if
  the acknowledgement has not already done so. Inside the webhook's transaction. Such an event
  naming no subject the partner holds an enrolment of is refused (partners.webhooks.EventRefused:
  422 `unknown-subject`, nothing kept).
"""

from django.utils import timezone

from audit.actions import Action, Outcome
from audit.services import record
from consent.models import DeletionReceipt, FaceEnrolment
from consent.signals import face_subject_enrolled
from partners.models import OutboxMessage
from partners.webhooks import EventRefused

FACE_KEY_PREFIX = "face:"


def on_outbox_delivered(sender, *, operation, partner_id, ordering_key, message_id, result, **kwargs):
    if operation == "face_put":
        FaceEnrolment.objects.filter(outbox_message_id=message_id, status=FaceEnrolment.Status.PENDING).update(
            status=FaceEnrolment.Status.DELIVERED, updated_at=timezone.now()
        )
        enrolment = (FaceEnrolment.objects.filter(outbox_message_id=message_id, partner_id=partner_id)
                     .values("resident_id", "subject_id").first())
        if enrolment is not None:
            face_subject_enrolled.send(sender=FaceEnrolment, partner_id=partner_id, **enrolment)
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


SUBJECT_EVENTS = frozenset({"enrolment.completed", "enrolment.failed", "subject.deleted"})


def on_partner_event(sender, *, partner_id, event_type, data, **kwargs):
    if event_type not in SUBJECT_EVENTS:
        return
    subject_id = data.get("subject_id")
    enrolments = FaceEnrolment.objects.filter(partner_id=partner_id, subject_id=subject_id)
    if not isinstance(subject_id, str) or not enrolments.exists():
        raise EventRefused("unknown-subject", "The event names no subject enrolled with you.")
    waiting = [FaceEnrolment.Status.PENDING, FaceEnrolment.Status.DELIVERED]
    now = timezone.now()
    if event_type == "enrolment.completed":
        enrolments.filter(status__in=waiting).update(status=FaceEnrolment.Status.ACTIVE, updated_at=now)
    elif event_type == "enrolment.failed":
        enrolments.filter(status__in=waiting).update(status=FaceEnrolment.Status.FAILED, updated_at=now)
    elif event_type == "subject.deleted":
        enrolments.exclude(status__in=[FaceEnrolment.Status.DELETED, FaceEnrolment.Status.FAILED]).update(
            status=FaceEnrolment.Status.DELETED, updated_at=now
        )
        _receipt_from_event(partner_id, subject_id, str(data.get("deletion_id", "")))


def _receipt_from_event(partner_id: int, subject_id: str, deletion_id: str) -> None:
    if DeletionReceipt.objects.filter(partner_id=partner_id, subject_id=subject_id).exists():
        return
    request = (
        OutboxMessage.objects.filter(partner_id=partner_id, operation="face_delete",
                                     ordering_key=f"{FACE_KEY_PREFIX}{subject_id}")
        .order_by("-id").values_list("id", flat=True).first()
    )
    if request is None:
        return  # a deletion we did not ask for: the enrolments say so, there is nothing to confirm
    receipt = DeletionReceipt.objects.create(partner_id=partner_id, subject_id=subject_id, deletion_id=deletion_id,
                                             outbox_message_id=request)
    record(action=Action.BIOMETRIC_DELETE_RECEIPT, outcome=Outcome.SUCCESS, partner_id=partner_id,
           object_type="deletion_receipt", object_ref=f"deletion_receipt:{receipt.pk}", reason="partner_event")
