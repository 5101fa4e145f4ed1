"""Consent, face enrolment and revocation against the real sandbox partner (HTTPS + mTLS),
real PostgreSQL and Redis; Celery runs eagerly, so the outbox delivers on commit."""

from __future__ import annotations

import base64
import datetime
import hashlib
import logging
import os
import tempfile

import pytest
from django.db import connection
from django.utils import timezone
from joserfc import jwe
from joserfc.jwk import import_key

from access.policy import Facts, face_subject_refusal
from access.reasons import Reason
from access.services.residencies import residency_end
from audit.actions import Action
from audit.models import AuditEvent
from consent import selectors, services
from consent.models import Consent, DeletionReceipt, FaceEnrolment
from consent.receipts import receipt_verifies
from core.security.identifiers import pseudonymous_ref
from partners.models import OutboxMessage
from partners.outbox.services import outbox_deliver
from tests import factories
from tests.consent.conftest import api_for, give, make_photo

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

Status = FaceEnrolment.Status


def consent_open(resident, partner) -> bool:
    """Whether a face decision would find the resident's consent for the partner open (the fact
    access.policy reads: when each unrevoked consent ends)."""
    return any(ends > timezone.now() for ends in selectors.face_consent_ends(resident_id=resident.pk,
                                                                                 partner_id=partner.pk))


def upload(api, partner, data: bytes, content_type="image/jpeg", name="me.jpg"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    photo = SimpleUploadedFile(name, data, content_type=content_type)
    return api.post("/api/v1/biometrics/face", {"photo": photo, "partner": partner.pk}, format="multipart")


def logged_operations(sandbox) -> list[tuple[str, str | None]]:
    return [(e["operation"], e.get("subject")) for e in sandbox.control.log()["entries"]]


def deliver_pending() -> list[str]:
    # face messages only: the subject.revoked events have their own tests (tests/partners/test_events_out.py)
    pending = OutboxMessage.objects.filter(status="pending").exclude(operation="event_out")
    pending.update(next_attempt_at=timezone.now())
    return [outbox_deliver(message_id=pk) for pk in pending.order_by("pk").values_list("pk", flat=True)]


def test_enrolment_requires_consent(api, face_partner, face_contract, clean_sandbox):
    response = upload(api, face_partner, make_photo())
    assert response.status_code == 403
    assert response.json()["type"].endswith("/consent-required")
    assert not FaceEnrolment.objects.exists()
    assert not OutboxMessage.objects.exists()
    assert clean_sandbox.control.log()["entries"] == []


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"GIF89a not a face", "image/gif", 415, "photo-unsupported-type"),
        (b"\xff\xd8\xff\xe0 truncated jpeg", "image/jpeg", 400, "photo-undecodable"),
        ("tiny", "image/png", 400, "photo-too-small"),
        ("huge", "image/jpeg", 413, "photo-too-large"),
    ],
)
def test_photo_validation_errors(api, resident, face_partner, face_contract, consent_text, settings,
                                 data, content_type, status, code):
    give(resident, face_partner, consent_text)
    if data == "tiny":
        data = make_photo("PNG", size=(50, 50))
    elif data == "huge":
        settings.FACE_PHOTO_MAX_BYTES = 20_000
        data = make_photo(size=(1500, 1500)) + os.urandom(30_000)
    response = upload(api, face_partner, data, content_type=content_type)
    assert response.status_code == status, response.content
    assert response.json()["type"].endswith("/" + code)
    assert not FaceEnrolment.objects.exists()
    assert not OutboxMessage.objects.filter(operation="face_put").exists()


def test_sandbox_decrypts_the_jwe_and_gets_the_same_image(api, resident, face_partner, face_contract,
                                                          consent_text, clean_sandbox):
    give(resident, face_partner, consent_text)
    response = upload(api, face_partner, make_photo())
    assert response.status_code == 202, response.content
    enrolment = FaceEnrolment.objects.get(pk=response.json()["id"])
    assert enrolment.status == Status.DELIVERED
    face = clean_sandbox.control.state()["faces"][enrolment.subject_id]
    assert face["image_sha256"] == enrolment.image_sha256
    assert face["consent_ref"] == enrolment.consent.ref
    message = OutboxMessage.objects.get(pk=enrolment.outbox_message_id)
    assert message.status == "delivered"
    assert message.payload["jwe"] == ""
    listed = api.get("/api/v1/biometrics/face").json()
    assert [(e["id"], e["status"]) for e in listed] == [(enrolment.pk, "delivered")]


def test_the_jwe_opens_only_with_the_partners_key(resident, face_partner, face_contract, consent_text,
                                                  clean_sandbox):
    give(resident, face_partner, consent_text)
    clean_sandbox.control.down()
    photo = make_photo()
    enrolment = services.face_enrol(resident_id=resident.pk, partner=face_partner, photo=photo)
    compact = OutboxMessage.objects.get(pk=enrolment.outbox_message_id).payload["jwe"]
    private = import_key(clean_sandbox.pki["partner-jwe.key"].read_bytes(), "EC")
    plaintext = jwe.decrypt_compact(compact, private).plaintext
    assert hashlib.sha256(plaintext).hexdigest() == enrolment.image_sha256
    other = import_key(clean_sandbox.pki["partner-jwe-rsa.key"].read_bytes(), "RSA")
    with pytest.raises(Exception):  # noqa: B017,PT011 - any failure: a wrong key never opens it
        jwe.decrypt_compact(compact, other)
    clean_sandbox.control.up()


def test_no_plaintext_in_the_database_logs_or_temp_files(api, resident, face_partner, face_contract,
                                                         consent_text, clean_sandbox, settings, caplog):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000  # Django's default handlers would spill this upload to disk
    give(resident, face_partner, consent_text)
    photo = make_photo(size=(800, 800))
    from consent.photos import clean_face_photo

    clean = clean_face_photo(photo).jpeg
    chunks = [blob[len(blob) // 2: len(blob) // 2 + 48] for blob in (photo, clean)]
    needles = [n for c in chunks for n in (c.hex(), base64.b64encode(c).decode()[:40],
                                           base64.urlsafe_b64encode(c).decode()[:40])]
    temp = tempfile.gettempdir()
    before = set(os.listdir(temp))
    caplog.set_level(logging.DEBUG)
    response = upload(api, face_partner, photo)
    assert response.status_code == 202, response.content
    new_files = set(os.listdir(temp)) - before
    for name in new_files:  # other processes may write temp files: none may hold the photo
        path = os.path.join(temp, name)
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                content = handle.read()
            assert all(c not in content for c in chunks), name
    assert not [n for n in new_files if n.startswith("tmp") and n.endswith(".upload")]
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [row[0] for row in cursor.fetchall()]
        for table in tables:
            cursor.execute(f'SELECT t::text FROM "{table}" t')  # noqa: S608 - table names from the catalogue
            dump = "\n".join(row[0] for row in cursor.fetchall())
            assert not any(n in dump for n in needles), table
    assert not any(n in caplog.text for n in needles)


def test_pairwise_subject_ids_differ_across_partners(resident):
    first, second = factories.partner(), factories.partner()
    a = services.subject_id_for(partner_id=first.pk, resident_id=resident.pk)
    b = services.subject_id_for(partner_id=second.pk, resident_id=resident.pk)
    assert a != b
    assert a == services.subject_id_for(partner_id=first.pk, resident_id=resident.pk)  # stable per partner


def test_revocation_is_immediate_and_deletion_reaches_the_sandbox_after_it_was_down(
        api, resident, face_partner, face_contract, consent_text, clean_sandbox):
    consent = give(resident, face_partner, consent_text)
    enrolment = FaceEnrolment.objects.get(pk=upload(api, face_partner, make_photo()).json()["id"])
    subject = enrolment.subject_id
    assert selectors.resident_id_for_subject(partner_id=face_partner.pk, subject_id=subject) == resident.pk
    assert face_subject_refusal(facts=Facts(), partner_id=face_partner.pk, subject_id=subject,
                                at=timezone.now()) == (None, resident.pk)
    clean_sandbox.control.down()
    response = api.post(f"/api/v1/consents/{consent.pk}/revoke")
    assert response.status_code == 200
    assert response.json()["revoked_reason"] == "resident"
    # from this instant every face path for the subject is refused
    assert not consent_open(resident, face_partner)
    assert face_subject_refusal(facts=Facts(), partner_id=face_partner.pk, subject_id=subject,
                                at=timezone.now()) == (Reason.NO_CONSENT, resident.pk)
    assert upload(api, face_partner, make_photo()).status_code == 403
    delete = OutboxMessage.objects.get(operation="face_delete")
    assert delete.status == "pending"
    assert delete.attempts == 1
    assert FaceEnrolment.objects.get(pk=enrolment.pk).status == Status.DELETING
    assert subject in clean_sandbox.control.state()["faces"]
    clean_sandbox.control.up()
    assert deliver_pending() == ["delivered"]
    receipt = DeletionReceipt.objects.get(subject_id=subject, partner=face_partner)
    assert receipt.deletion_id
    assert subject not in clean_sandbox.control.state()["faces"]
    assert FaceEnrolment.objects.get(pk=enrolment.pk).status == Status.DELETED
    assert logged_operations(clean_sandbox)[-1] == ("face.delete", subject)
    assert AuditEvent.objects.filter(action=Action.BIOMETRIC_DELETE_RECEIPT).count() == 1


def test_no_photo_reaches_the_partner_after_revoke_returns(api, resident, face_partner, face_contract,
                                                           consent_text, clean_sandbox):
    consent = give(resident, face_partner, consent_text)
    clean_sandbox.control.down()
    enrolment = FaceEnrolment.objects.get(pk=upload(api, face_partner, make_photo()).json()["id"])
    put = OutboxMessage.objects.get(pk=enrolment.outbox_message_id)
    assert put.status == "pending"  # waiting for the partner to come back
    assert api.post(f"/api/v1/consents/{consent.pk}/revoke").status_code == 200
    put.refresh_from_db()
    assert put.status == "dead"
    assert put.last_error == "consent_revoked"
    assert put.payload["jwe"] == ""
    clean_sandbox.control.up()
    assert deliver_pending() == ["delivered"]
    operations = logged_operations(clean_sandbox)
    assert ("face.enrol", enrolment.subject_id) not in operations
    assert operations == [("face.delete", enrolment.subject_id)]
    assert enrolment.subject_id not in clean_sandbox.control.state()["faces"]


def test_retention_expiry_revokes_and_deletes(resident, face_partner, face_contract, consent_text, clean_sandbox):
    consent = give(resident, face_partner, consent_text,
                   retention_until=timezone.now() + datetime.timedelta(days=1))
    enrolment = services.face_enrol(resident_id=resident.pk, partner=face_partner, photo=make_photo())
    assert services.consent_expire_due() == 0
    assert services.consent_expire_due(at=timezone.now() + datetime.timedelta(days=2)) == 1
    consent.refresh_from_db()
    assert consent.revoked_reason == "expired"
    assert consent.revoked_at is not None
    assert DeletionReceipt.objects.filter(subject_id=enrolment.subject_id).exists()
    assert enrolment.subject_id not in clean_sandbox.control.state()["faces"]
    assert AuditEvent.objects.filter(action=Action.CONSENT_EXPIRE, object_ref=consent.ref).exists()


def test_move_out_revokes_the_consent(home, face_partner, face_contract, consent_text, clean_sandbox):
    building, _ = home
    resident = factories.resident(company_=building.company)
    unit = factories.unit(building_=building)
    residency = factories.residency(resident_=resident, unit_=unit,
                                    valid_from=timezone.localdate() - datetime.timedelta(days=30))
    consent = give(resident, face_partner, consent_text, building_id=building.pk)
    residency_end(residency=residency)
    consent.refresh_from_db()
    assert consent.revoked_reason == "move_out"
    assert not consent_open(resident, face_partner)
    assert ("face.delete", services.subject_id_for(partner_id=face_partner.pk, resident_id=resident.pk)) in \
        logged_operations(clean_sandbox)


def test_receipt_signature_verifies_and_fails_when_tampered(api, resident, face_partner, face_contract,
                                                            consent_text):
    consent = give(resident, face_partner, consent_text)
    response = api.get(f"/api/v1/consents/{consent.pk}/receipt")
    assert response.status_code == 200
    receipt = response.json()
    assert receipt["text_sha256"] == consent_text.sha256
    assert receipt["resident_ref"] == pseudonymous_ref("resident", resident.pk)
    assert receipt_verifies(receipt)
    tampered = {**receipt, "retention_until": "2099-01-01T00:00:00.000000Z"}
    assert not receipt_verifies(tampered)
    forged = {**receipt, "signature": {**receipt["signature"], "value": base64.b64encode(b"x" * 64).decode()}}
    assert not receipt_verifies(forged)


def test_consents_api_give_list_and_scopes(resident, face_partner, face_contract, consent_text):
    api = api_for(resident.user)
    response = api.post("/api/v1/consents", {"partner": face_partner.pk, "text_sha256": consent_text.sha256},
                        format="json", HTTP_USER_AGENT="TestApp/1.0")
    assert response.status_code == 201, response.content
    consent = Consent.objects.get(pk=response.json()["id"])
    assert consent.channel == "app"
    assert consent.evidence_user_agent_sha256 == hashlib.sha256(b"TestApp/1.0").hexdigest()
    again = api.post("/api/v1/consents", {"partner": face_partner.pk, "text_sha256": consent_text.sha256},
                     format="json")
    assert again.status_code == 409  # already open: a conflict with the consent you have
    assert again.json()["type"] == "/problems/consent-exists"
    assert [c["id"] for c in api.get("/api/v1/consents").json()] == [consent.pk]
    reader = api_for(resident.user, scopes="history:read")
    assert reader.get("/api/v1/consents").status_code == 200
    refused = reader.post(f"/api/v1/consents/{consent.pk}/revoke")
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/missing-scope")
    consent.refresh_from_db()
    assert consent.revoked_at is None
    other = factories.resident(company_=resident.company)
    assert api_for(other.user).post(f"/api/v1/consents/{consent.pk}/revoke").status_code == 404
    consent.refresh_from_db()
    assert consent.revoked_at is None


def test_consent_without_face_contract_is_refused(resident, consent_text):
    partner = factories.partner()
    with pytest.raises(Exception, match="may not process faces"):
        give(resident, partner, consent_text)
    assert not Consent.objects.exists()


def test_a_consent_is_never_edited_in_place(resident, face_partner, face_contract, consent_text):
    consent = give(resident, face_partner, consent_text)
    consent.retention_until = consent.retention_until - datetime.timedelta(hours=1)
    with pytest.raises(ValueError, match="never edited"):
        consent.save()
    consent.text.body = "changed"
    with pytest.raises(ValueError, match="immutable"):
        consent.text.save()


def test_data_export_holds_everything_about_the_resident(api, resident, face_partner, face_contract,
                                                         consent_text):
    consent = give(resident, face_partner, consent_text)
    response = api.get("/api/v1/me/data-export")
    assert response.status_code == 200
    data = response.json()
    assert data["resident"]["full_name"] == resident.full_name
    assert [c["id"] for c in data["consents"]] == [consent.pk]
    assert data["consent_texts"][consent_text.sha256]["body"] == consent_text.body
    assert AuditEvent.objects.filter(action=Action.RESIDENT_DATA_EXPORT).count() == 1
