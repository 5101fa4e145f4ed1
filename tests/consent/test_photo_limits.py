"""Face photos of realistic size: the service's limit (FACE_PHOTO_MAX_BYTES) holds end to end -
the intake, our JWE and the partner's JWE limits (partners.face_jwe) - so every photo the
service accepts is enrolled at the partner, and a larger one is refused before anything is queued."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from joserfc import jwe
from joserfc.errors import ExceededSizeError
from joserfc.jwk import import_key
from PIL import Image

from consent.encryption import encrypt_for_partner
from consent.models import FaceEnrolment
from consent.photos import clean_face_photo
from partners.face_jwe import DEFAULT_FACE_PHOTO_MAX_BYTES, base64url_length, face_jwe_registry
from partners.models import OutboxMessage
from partners.sandbox.faces import FaceKeys, PhotoTooLarge
from tests import factories
from tests.access.api.conftest import make_token
from tests.consent.conftest import give, grainy_photo, noise_photo, photo_of_exactly

Status = FaceEnrolment.Status


def upload(api, partner, data: bytes):
    photo = SimpleUploadedFile("me.jpg", data, content_type="image/jpeg")
    return api.post("/api/v1/biometrics/face", {"photo": photo, "partner": partner.pk}, format="multipart")


# --- the JWE limits, both ends ----------------------------------------------------------------


def test_joserfc_defaults_refuse_a_photo_of_50_kb(dev_pki):
    """Why the limits are explicit: joserfc's default registry refuses a 50,000-byte photo."""
    public = dev_pki["partner-jwe.pub.pem"].read_bytes()
    compact = encrypt_for_partner(os.urandom(50_000), public_key_pem=public)
    private = import_key(dev_pki["partner-jwe.key"].read_bytes(), "EC")
    with pytest.raises(ExceededSizeError):
        jwe.decrypt_compact(compact, private)
    registry = face_jwe_registry(max_photo_bytes=DEFAULT_FACE_PHOTO_MAX_BYTES)
    assert len(jwe.decrypt_compact(compact, private, registry=registry).plaintext) == 50_000


@pytest.mark.parametrize("key", ["partner-jwe", "partner-jwe-rsa"])
def test_the_partner_opens_exactly_what_the_service_may_send(dev_pki, key):
    limit = 200_000
    keys = FaceKeys(dev_pki["partner-jwe.key"].read_bytes(), dev_pki["partner-jwe-rsa.key"].read_bytes(),
                    max_photo_bytes=limit)
    public = dev_pki[f"{key}.pub.pem"].read_bytes()
    at_limit = os.urandom(limit)
    assert keys.decrypt(encrypt_for_partner(at_limit, public_key_pem=public, max_photo_bytes=limit)) == at_limit
    with pytest.raises(ValueError, match="at most 200000"):
        encrypt_for_partner(at_limit + b"x", public_key_pem=public, max_photo_bytes=limit)
    over = encrypt_for_partner(at_limit + b"x", public_key_pem=public, max_photo_bytes=limit + 1)
    with pytest.raises(PhotoTooLarge):
        keys.decrypt(over)


def test_registry_limits_are_derived_from_the_photo_limit():
    registry = face_jwe_registry(max_photo_bytes=300_000)
    assert registry.max_ciphertext_length == base64url_length(300_000) == 400_000
    with pytest.raises(ValueError, match="positive"):
        face_jwe_registry(max_photo_bytes=0)


def test_the_sandbox_defaults_to_the_services_limit(settings):
    if "FACE_PHOTO_MAX_BYTES" in os.environ:
        pytest.skip("FACE_PHOTO_MAX_BYTES is set in this environment")
    assert settings.FACE_PHOTO_MAX_BYTES == DEFAULT_FACE_PHOTO_MAX_BYTES


def test_reencoding_never_makes_a_photo_larger_than_the_limit(settings):
    original = noise_photo((640, 640), 75)  # grain saved at a low quality grows when re-encoded at 92
    settings.FACE_PHOTO_MAX_BYTES = len(original)
    regrown = io.BytesIO()
    Image.open(io.BytesIO(original)).save(regrown, format="JPEG", quality=92, optimize=True)
    assert regrown.tell() > len(original)
    clean = clean_face_photo(original, declared_content_type="image/jpeg")
    assert len(clean.jpeg) <= settings.FACE_PHOTO_MAX_BYTES
    assert clean.jpeg.startswith(b"\xff\xd8\xff")


# --- end to end against the real sandbox ----------------------------------------------------------

@pytest.mark.partner
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_realistic_photo_is_enrolled_through_the_api_the_outbox_and_the_sandbox(
        home, linked_sandbox_partner, consent_text, live_server, clean_sandbox):
    building, resident = home
    partner = linked_sandbox_partner
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    give(resident, partner, consent_text)
    photo = grainy_photo()
    assert len(photo) >= 300_000
    token = make_token(resident.user, "consent:write")
    # straight to the web process (how nginx buffers upload bodies is the proxy's own concern)
    response = requests.post(
        f"{live_server.url}/api/v1/biometrics/face", headers={"Authorization": f"Bearer {token}"},
        data={"partner": partner.pk}, files={"photo": ("me.jpg", photo, "image/jpeg")}, timeout=30,
    )
    assert response.status_code == 202, response.text
    enrolment = FaceEnrolment.objects.get(pk=response.json()["id"])
    assert enrolment.status == Status.DELIVERED  # the sandbox decrypted it and acknowledged
    face = clean_sandbox.control.state()["faces"][enrolment.subject_id]
    assert face["image_sha256"] == enrolment.image_sha256
    assert face["image_size"] > 250_000
    assert OutboxMessage.objects.get(pk=enrolment.outbox_message_id).status == "delivered"

    # the partner confirms the enrolment with a signed webhook through our partner listener
    sent = clean_sandbox.control.emit_event("enrolment.completed", {"subject_id": enrolment.subject_id})
    assert sent["http_status"] == 200
    enrolment.refresh_from_db()
    assert enrolment.status == Status.ACTIVE


@pytest.mark.partner
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_photo_at_the_limit_is_enrolled(api, resident, face_partner, face_contract, consent_text, settings,
                                          clean_sandbox):
    give(resident, face_partner, consent_text)
    photo = photo_of_exactly(settings.FACE_PHOTO_MAX_BYTES)
    response = upload(api, face_partner, photo)
    assert response.status_code == 202, response.content
    enrolment = FaceEnrolment.objects.get(pk=response.json()["id"])
    assert enrolment.status == Status.DELIVERED
    face = clean_sandbox.control.state()["faces"][enrolment.subject_id]
    assert face["image_sha256"] == enrolment.image_sha256
    assert face["image_size"] <= settings.FACE_PHOTO_MAX_BYTES
    assert not OutboxMessage.objects.filter(status=OutboxMessage.Status.DEAD).exists()


@pytest.mark.partner
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_photo_just_over_the_limit_is_refused_and_nothing_is_queued(api, resident, face_partner, face_contract,
                                                                      consent_text, settings, clean_sandbox):
    give(resident, face_partner, consent_text)
    photo = photo_of_exactly(settings.FACE_PHOTO_MAX_BYTES + 1)
    response = upload(api, face_partner, photo)
    assert response.status_code == 413, response.content
    problem = response.json()
    assert problem["type"].endswith("/photo-too-large")
    assert str(settings.FACE_PHOTO_MAX_BYTES) in problem["detail"]
    assert not FaceEnrolment.objects.exists()
    assert not OutboxMessage.objects.exists()
    assert clean_sandbox.control.log()["entries"] == []
    assert hashlib.sha256(photo).hexdigest() not in str(clean_sandbox.control.state())
