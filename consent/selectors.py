"""Reads of the consent app."""

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils import timezone

from consent.models import FACE_PURPOSE, Consent, ConsentText, DeletionReceipt, FaceEnrolment
from partners.models import OutboxMessage, Partner, PartnerContract


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


def face_contracts(*, partner_id: int, company_id: int, at=None) -> QuerySet[PartnerContract]:
    """The partner's active contracts with the company that allow face recognition."""
    return PartnerContract.objects.active(at or timezone.now()).filter(
        partner_id=partner_id, company_id=company_id, allows_face=True
    )


def _text_specificity(text: ConsentText) -> int:
    return (text.partner_id is not None) + (text.company_id is not None)


def consent_text_applies(*, text: ConsentText, partner_id: int, company_id: int, purpose: str) -> bool:
    """`text` may be agreed to for this partner, company and purpose (its scope covers them)."""
    return (text.purpose == purpose and text.partner_id in (None, partner_id)
            and text.company_id in (None, company_id))


@dataclass(frozen=True)
class CurrentConsentText:
    text: ConsentText
    partner: Partner
    languages: tuple[str, ...]  # the languages the text is available in


def consent_text_current(*, partner_id: int, company_id: int, purpose: str,
                         languages: list[str]) -> CurrentConsentText | None:
    """The text a resident of `company_id` is shown before consenting to `purpose` by `partner_id`.

    None if the purpose is unknown or the partner has no active contract with the company
    allowing it (an unknown partner and another company's partner look alike). The scope is the
    most specific one with any text (this partner and company, else this partner, else any
    partner); within it, the newest text in the first of `languages` (most preferred first) it
    is available in, else in the language of the newest text. None if no text applies."""
    if purpose != FACE_PURPOSE:
        return None
    partner = Partner.objects.filter(pk=partner_id).first()
    if partner is None or not face_contracts(partner_id=partner_id, company_id=company_id).exists():
        return None
    candidates = list(
        ConsentText.objects.filter(purpose=purpose).filter(
            Q(partner_id=partner_id, company_id=company_id) | Q(partner_id=partner_id, company_id__isnull=True)
            | Q(partner__isnull=True, company_id__isnull=True)
        ).order_by("-created_at", "-id")
    )
    if not candidates:
        return None
    best = max(_text_specificity(text) for text in candidates)
    newest: dict[str, ConsentText] = {}
    for text in candidates:
        if _text_specificity(text) == best:
            newest.setdefault(text.language, text)
    language = next((code for code in languages if code in newest), next(iter(newest)))
    return CurrentConsentText(text=newest[language], partner=partner, languages=tuple(sorted(newest)))
