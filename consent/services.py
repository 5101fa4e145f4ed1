"""Writes of the consent app: give/revoke/expire consents, enrol faces, forget subjects.

Revocation is immediate: in ONE transaction the consent is closed, pending face_put messages
of the subject are cancelled (so no photo of a subject without consent ever leaves), the
enrolments are marked for deletion and a face_delete message is written to the outbox.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from audit.actions import Action, Outcome
from audit.actors import actor_fields
from audit.services import record
from consent.encryption import encrypt_for_partner
from consent.models import FACE_PURPOSE, Consent, ConsentText, FaceEnrolment
from consent.photos import clean_face_photo
from consent.selectors import consent_text_applies, consents_due_for_expiry, face_contracts
from consent.signals import face_subjects_revoked
from consent.subjects import pairwise_subject_id
from partners.models import OutboxMessage, Partner
from partners.outbound_events import partner_event_enqueue
from partners.outbox.services import outbox_enqueue
from partners.selectors import current_credentials

Reason = Consent.RevokedReason


class ConsentRequired(Exception):
    """Face enrolment without an active consent for that partner and purpose."""


class PartnerKeyMissing(Exception):
    """The partner has no current public key to encrypt face photos to."""


def face_ordering_key(subject_id: str) -> str:
    return f"face:{subject_id}"


def subject_id_for(*, partner_id: int, resident_id: int) -> str:
    credentials = current_credentials(partner=partner_id)
    if credentials is None:
        raise PartnerKeyMissing("the partner has no current credentials")
    return pairwise_subject_id(subject_key=credentials.subject_key_bytes(), resident_id=resident_id)


def consent_text_publish(*, version: str, body: str, language: str = "ru", partner: Partner | None = None,
                         company_id: int | None = None, purpose: str = FACE_PURPOSE) -> ConsentText:
    """Store a consent wording once (idempotent by its SHA-256) for `purpose`, naming `partner`
    (None: any partner) and optionally one management company.

    Checks (ValidationError): `language` is one of LANGUAGES; `purpose` is known; a company
    needs a partner; the same wording already published for another scope
    (`text_published_elsewhere`: a text names its partner and company, so it cannot be shared).
    """
    if language not in dict(settings.LANGUAGES):
        raise ValidationError(gettext("Language must be one of %(languages)s.")
                              % {"languages": ", ".join(dict(settings.LANGUAGES))}, code="bad_language")
    if purpose not in Consent.Purpose.values:
        raise ValidationError(gettext("Unknown purpose."), code="bad_purpose")
    partner_id = partner.pk if partner is not None else None
    digest = hashlib.sha256(body.encode()).hexdigest()
    existing = ConsentText.objects.filter(sha256=digest).first()
    if existing is not None:
        if (existing.partner_id, existing.company_id, existing.purpose) != (partner_id, company_id, purpose):
            raise ValidationError(gettext("This wording is already published for another partner, company or purpose."),
                                  code="text_published_elsewhere")
        return existing
    text = ConsentText(version=version, body=body, language=language, partner=partner, company_id=company_id,
                       purpose=purpose)
    text.full_clean(exclude=["sha256"])
    text.save()
    return text


@transaction.atomic
def consent_give(
    *, resident_id: int, company_id: int, partner: Partner, text: ConsentText, building_id: int | None = None,
    retention_until: datetime.datetime | None = None, channel: str = Consent.Channel.APP,
    evidence_ip: str | None = None, user_agent: str = "", actor=None,
) -> Consent:
    """Record a resident's consent to face processing by `partner`.

    Checks: the partner is usable and has an active contract with the resident's company that
    allows face recognition (covering `building_id` if given); `text` is a text for this partner
    (or any partner), this company (or any) and face recognition (`text_not_applicable`);
    retention ends in the future and
    no later than the contract's retention period allows; no open consent exists already
    (ValidationError `consent_exists` - revoke first: a change is a new record). Records
    `consent.give`. The user agent is kept as a SHA-256 only.
    """
    now = timezone.now()
    contracts = face_contracts(partner_id=partner.pk, company_id=company_id, at=now)
    if building_id is not None:
        contracts = contracts.filter(buildings__id=building_id)
    contract = contracts.order_by("-retention_days").first()
    if not partner.is_usable or contract is None:
        raise ValidationError(gettext("This partner may not process faces for your building."), code="no_face_contract")
    if not consent_text_applies(text=text, partner_id=partner.pk, company_id=company_id, purpose=FACE_PURPOSE):
        raise ValidationError(gettext("This consent text is not the one for this partner and purpose."),
                              code="text_not_applicable")
    longest = now + datetime.timedelta(days=contract.retention_days)
    retention_until = retention_until or longest
    if not now < retention_until <= longest:
        raise ValidationError(gettext("Retention must end within %(days)s days.") % {"days": contract.retention_days},
                              code="bad_retention")
    if Consent.objects.filter(resident_id=resident_id, partner=partner, purpose=FACE_PURPOSE,
                              revoked_at__isnull=True).exists():
        raise ValidationError(gettext("A consent for this partner is already open."), code="consent_exists")
    consent = Consent.objects.create(
        resident_id=resident_id, company_id=company_id, building_id=building_id, partner=partner,
        purpose=FACE_PURPOSE, text=text, retention_until=retention_until, granted_at=now, channel=channel,
        evidence_ip=evidence_ip or None,
        evidence_user_agent_sha256=hashlib.sha256(user_agent.encode()).hexdigest() if user_agent else "",
    )
    record(
        action=Action.CONSENT_GIVE, outcome=Outcome.SUCCESS, **actor_fields(actor),
        object_type="consent", object_ref=consent.ref, partner_id=partner.pk, company_id=company_id,
        building_id=building_id, reason=text.sha256[:16], source_ip=evidence_ip or None,
    )
    return consent


def _cancel_pending_face_puts(*, partner_id: int, subject_id: str) -> int:
    # Blocking row lock: a delivery in flight holds its row, so we wait until it has either
    # reached the partner (then the face_delete below follows it) or not; pending messages are
    # then cancelled (dead-lettered with the ciphertext emptied), so none is ever sent.
    pending = list(
        OutboxMessage.objects.select_for_update().filter(
            partner_id=partner_id, ordering_key=face_ordering_key(subject_id), operation="face_put",
            status=OutboxMessage.Status.PENDING,
        )
    )
    now = timezone.now()
    for message in pending:
        message.status = OutboxMessage.Status.DEAD
        message.dead_lettered_at = now
        message.dispatched_at = None
        message.last_error = "consent_revoked"
        message.payload = {**message.payload, "jwe": ""}
        message.save()
    return len(pending)


def _forget_face(*, consent: Consent) -> list[str]:
    """Cancel, mark and enqueue the deletion of `consent`'s subject at its partner (caller's transaction).
    Returns the subject ids."""
    subjects = set(
        FaceEnrolment.objects.filter(resident_id=consent.resident_id, partner_id=consent.partner_id)
        .values_list("subject_id", flat=True)
    )
    with contextlib.suppress(PartnerKeyMissing):  # no credentials: only enrolled subjects are known
        subjects.add(subject_id_for(partner_id=consent.partner_id, resident_id=consent.resident_id))
    now = timezone.now()
    for subject_id in sorted(subjects):
        _cancel_pending_face_puts(partner_id=consent.partner_id, subject_id=subject_id)
        FaceEnrolment.objects.filter(partner_id=consent.partner_id, subject_id=subject_id).exclude(
            status__in=[FaceEnrolment.Status.DELETED, FaceEnrolment.Status.FAILED]
        ).update(status=FaceEnrolment.Status.DELETING, updated_at=now)
        outbox_enqueue(
            partner_id=consent.partner_id, operation="face_delete", ordering_key=face_ordering_key(subject_id),
            payload={"subject": subject_id},
        )
    return sorted(subjects)


@transaction.atomic
def consent_revoke(*, consent: Consent, reason: str = Reason.RESIDENT, actor=None) -> Consent:
    """Revoke `consent` with immediate effect, in one transaction.

    Locks the consent row (serialised with `face_enrol`); an already revoked consent is
    returned unchanged. Sets `revoked_at`; cancels the subject's pending face_put messages;
    marks its enrolments `deleting`; enqueues a face_delete (the partner's acknowledgement
    becomes a DeletionReceipt) and a `subject.revoked` event ``{subject_id, reason}`` per subject
    (partners.outbound_events); sends `face_subjects_revoked` (the access app patches the
    partner's offline allowlists). Records `consent.revoke` (or `consent.expire`).
    """
    locked = Consent.objects.select_for_update().get(pk=consent.pk)
    if locked.revoked_at is not None:
        return locked
    locked.revoked_at = timezone.now()
    locked.revoked_reason = reason
    locked.save(update_fields=["revoked_at", "revoked_reason"])
    subjects = _forget_face(consent=locked)
    for subject_id in subjects:
        partner_event_enqueue(partner_id=locked.partner_id, event_type="subject.revoked",
                              data={"subject_id": subject_id, "reason": str(reason)})
    face_subjects_revoked.send(sender=Consent, partner_id=locked.partner_id, resident_id=locked.resident_id,
                               subject_ids=subjects, reason=str(reason))
    action = Action.CONSENT_EXPIRE if reason == Reason.EXPIRED else Action.CONSENT_REVOKE
    record(
        action=action, outcome=Outcome.SUCCESS, **actor_fields(actor),
        object_type="consent", object_ref=locked.ref, partner_id=locked.partner_id, company_id=locked.company_id,
        building_id=locked.building_id, reason=reason,
    )
    return locked


@transaction.atomic
def subject_forget(*, resident_id: int, reason: str, building_id: int | None = None, actor=None) -> int:
    """Revoke the resident's open consents (move-out: those for `building_id` and those not tied
    to a building; deletion: all) with the same deletion flow. Returns how many were revoked."""
    open_consents = Consent.objects.filter(resident_id=resident_id, revoked_at__isnull=True)
    if building_id is not None:
        open_consents = open_consents.filter(building_id__in=[building_id]) | open_consents.filter(
            building_id__isnull=True
        )
    count = 0
    for consent in open_consents.order_by("pk"):
        consent_revoke(consent=consent, reason=reason, actor=actor)
        count += 1
    return count


def consent_expire_due(*, at=None) -> int:
    """Revoke (reason `expired`) every open consent whose retention has ended, each in its own
    transaction, with the same deletion flow. Returns how many expired."""
    count = 0
    for consent in consents_due_for_expiry(at).order_by("pk"):
        consent_revoke(consent=consent, reason=Reason.EXPIRED)
        count += 1
    return count


def face_enrol(*, resident_id: int, partner: Partner, photo: bytes, content_type: str = "", actor=None,
               source_ip: str | None = None) -> FaceEnrolment:
    """Enrol the resident's face at `partner`.

    Checks: the photo (PhotoRejected from `clean_face_photo`, before anything is written);
    an active face consent for this partner, locked for the transaction (ConsentRequired);
    the partner's current public key (PartnerKeyMissing). The cleaned JPEG is encrypted at once
    to that key (JWE) and only the ciphertext is queued (outbox face_put, purged after the
    partner's ack). Records `biometric.enrol`. The plaintext never leaves this function.
    """
    clean = clean_face_photo(photo, declared_content_type=content_type)
    with transaction.atomic():
        consent = (
            Consent.objects.active().select_for_update()
            .filter(resident_id=resident_id, partner=partner, purpose=FACE_PURPOSE).first()
        )
        if consent is None or not partner.is_usable:
            raise ConsentRequired("an active consent to face processing by this partner is required")
        credentials = current_credentials(partner=partner)
        if credentials is None or not credentials.partner_public_key_pem:
            raise PartnerKeyMissing("the partner has no public key for face photos")
        subject_id = pairwise_subject_id(subject_key=credentials.subject_key_bytes(), resident_id=resident_id)
        jwe = encrypt_for_partner(clean.jpeg, public_key_pem=credentials.partner_public_key_pem,
                                  key_id=f"v{credentials.version}")
        message = outbox_enqueue(
            partner_id=partner.pk, operation="face_put", ordering_key=face_ordering_key(subject_id),
            payload={"subject": subject_id, "jwe": jwe, "consent_ref": consent.ref,
                     "retention_until": consent.retention_until.isoformat()},
        )
        enrolment = FaceEnrolment.objects.create(
            consent=consent, partner=partner, resident_id=resident_id, subject_id=subject_id,
            image_sha256=hashlib.sha256(clean.jpeg).hexdigest(), outbox_message=message,
        )
        record(
            action=Action.BIOMETRIC_ENROL, outcome=Outcome.SUCCESS, **actor_fields(actor),
            object_type="face_enrolment", object_ref=f"face_enrolment:{enrolment.pk}", partner_id=partner.pk,
            company_id=consent.company_id, building_id=consent.building_id, source_ip=source_ip,
        )
    return enrolment
