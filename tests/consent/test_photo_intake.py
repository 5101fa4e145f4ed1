"""Face photo validation, metadata stripping, JWE to the partner key, pairwise subject ids."""

import io

import pytest
from joserfc import jwe
from joserfc.jwk import ECKey, RSAKey
from PIL import Image

from consent.encryption import encrypt_for_partner, load_partner_public_key
from consent.photos import PhotoRejected, clean_face_photo
from consent.subjects import pairwise_subject_id


def make_image(fmt="JPEG", size=(640, 480), exif_gps=False) -> bytes:
    image = Image.new("RGB", size, (120, 160, 200))
    out = io.BytesIO()
    if exif_gps:
        exif = Image.Exif()
        exif[0x010F] = "SecretCam Inc"  # Make
        exif[0x8825] = {1: "N", 2: (55.0, 45.0, 0.0)}  # GPS IFD
        image.save(out, format=fmt, exif=exif)
    else:
        image.save(out, format=fmt)
    return out.getvalue()


def test_jpeg_is_reencoded_without_metadata():
    original = make_image(exif_gps=True)
    assert b"SecretCam" in original
    clean = clean_face_photo(original, declared_content_type="image/jpeg")
    assert b"SecretCam" not in clean.jpeg
    with Image.open(io.BytesIO(clean.jpeg)) as image:
        assert image.format == "JPEG"
        assert not image.getexif()
        assert image.size == (640, 480)


def test_png_is_accepted_and_becomes_jpeg():
    clean = clean_face_photo(make_image("PNG"), declared_content_type="image/png")
    assert clean.jpeg.startswith(b"\xff\xd8\xff")


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (make_image("GIF"), "", 415, "unsupported_type"),
        (b"%PDF-1.7 not an image", "", 415, "undecodable"),
        (make_image(), "application/pdf", 415, "unsupported_type"),
        (make_image()[:300], "image/jpeg", 400, "undecodable"),
        (make_image(size=(100, 100)), "image/jpeg", 400, "too_small"),
        (make_image("PNG", size=(5000, 300)), "image/png", 400, "too_big_dimensions"),
    ],
)
def test_bad_photos_are_rejected_with_a_clear_reason(data, content_type, status, code):
    with pytest.raises(PhotoRejected) as rejected:
        clean_face_photo(data, declared_content_type=content_type)
    assert (rejected.value.status, rejected.value.code) == (status, code)
    assert rejected.value.message


def test_oversized_photo_is_413(settings):
    settings.FACE_PHOTO_MAX_BYTES = 1000
    with pytest.raises(PhotoRejected) as rejected:
        clean_face_photo(make_image())
    assert rejected.value.status == 413


@pytest.mark.parametrize("key", [ECKey.generate_key("P-256"), RSAKey.generate_key(3072)])
def test_only_the_partner_private_key_opens_the_photo(key):
    public_pem = key.as_pem(private=False)
    token = encrypt_for_partner(b"jpeg-bytes", public_key_pem=public_pem, key_id="partner-1")
    registry = jwe.JWERegistry(algorithms=["RSA-OAEP-256", "ECDH-ES+A256KW", "A256GCM"])
    assert jwe.decrypt_compact(token, key, registry=registry).plaintext == b"jpeg-bytes"
    other = type(key).generate_key("P-256" if isinstance(key, ECKey) else 3072)
    with pytest.raises(Exception):  # noqa: B017, PT011 - joserfc raises its own decryption errors
        jwe.decrypt_compact(token, other, registry=registry)
    assert b"jpeg-bytes" not in token.encode()


def test_a_private_key_is_refused_as_recipient():
    with pytest.raises(ValueError, match="PUBLIC"):
        load_partner_public_key(ECKey.generate_key("P-256").as_pem(private=True))


def test_pairwise_subject_ids_differ_across_partners_and_are_stable():
    a = pairwise_subject_id(subject_key=b"k" * 32, resident_id=42)
    b = pairwise_subject_id(subject_key=b"q" * 32, resident_id=42)
    assert a != b
    assert a == pairwise_subject_id(subject_key=b"k" * 32, resident_id=42)
    assert a != pairwise_subject_id(subject_key=b"k" * 32, resident_id=43)
    assert a.startswith("sub_")
    assert "42" not in a
