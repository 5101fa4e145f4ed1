"""Fixtures of the consent tests: a sandbox partner with a face key, a resident with a face
contract, a consent text, and an API client authenticated with an OAuth2 token of chosen scopes."""

from __future__ import annotations

import datetime
import io
import os

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken
from PIL import Image
from rest_framework.test import APIClient

from consent import services
from partners.services import partner_credentials_rotate
from tests import factories
from tests.partners import outbox_fixtures

client_settings = outbox_fixtures.client_settings
sandbox_partner = outbox_fixtures.sandbox_partner
linked_sandbox_partner = outbox_fixtures.linked_sandbox_partner

TEXT = "Я даю согласие на обработку изображения моего лица для доступа в подъезд. Версия 1."


def make_photo(fmt="JPEG", size=(640, 480), colour=(120, 160, 200)) -> bytes:
    image = Image.new("RGB", size, colour)
    for x in range(0, size[0], 7):  # some detail, so the JPEG has distinctive bytes
        image.putpixel((x, (x * 13) % size[1]), (x % 256, (x * 3) % 256, (x * 7) % 256))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def grainy_photo(size=(800, 1000), quality=90) -> bytes:
    """A photo-like JPEG that does not compress to nothing, generated afresh: a gradient under
    strong sensor noise in each channel (about 480 KB at the default size)."""
    base = Image.linear_gradient("L").resize(size)
    channels = [Image.blend(base, Image.effect_noise(size, 48), 0.6) for _ in range(3)]
    out = io.BytesIO()
    Image.merge("RGB", channels).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def noise_photo(size: tuple[int, int], quality: int) -> bytes:
    """A JPEG of uniform noise: the least compressible photo there is."""
    image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def photo_of_exactly(total: int) -> bytes:
    """A valid JPEG of exactly `total` bytes: noise as large as fits, then comment (COM) segments
    after the start-of-image marker (the intake's re-encoding drops them, like any metadata)."""
    side = int((total / 1.2) ** 0.5)  # noise at quality 95 takes ~1.3 bytes per pixel
    jpeg = noise_photo((side, side), 95)
    while len(jpeg) > total - 4:
        side = int(side * 0.9)
        jpeg = noise_photo((side, side), 95)
    padding, missing = [], total - len(jpeg)
    while missing:
        segment = min(missing, 4 + 65533)
        if 0 < missing - segment < 4:
            segment -= 4
        padding.append(b"\xff\xfe" + (segment - 2).to_bytes(2, "big") + b"\0" * (segment - 4))
        missing -= segment
    return jpeg[:2] + b"".join(padding) + jpeg[2:]


@pytest.fixture
def face_partner(sandbox_partner, clean_sandbox):
    """The sandbox partner with its JWE public key in the current credentials."""
    partner_credentials_rotate(
        partner=sandbox_partner, client_id=clean_sandbox.client_id, client_secret=clean_sandbox.client_secret,
        partner_public_key_pem=clean_sandbox.pki["partner-jwe.pub.pem"].read_text(),
    )
    return sandbox_partner


@pytest.fixture
def consent_text():
    return services.consent_text_publish(version="1", body=TEXT)


@pytest.fixture
def home():
    """A building with a unit, and a resident living there."""
    unit = factories.unit()
    resident = factories.resident(unit_=unit)
    return unit.building, resident


@pytest.fixture
def resident(home):
    return home[1]


@pytest.fixture
def face_contract(face_partner, home):
    building, _resident = home
    return factories.contract(partner_=face_partner, company_=building.company, buildings=[building])


def api_for(user, scopes="consent:write history:read") -> APIClient:
    client = APIClient()
    token = AccessToken(user=user, scope=scopes, expires=timezone.now() + datetime.timedelta(hours=1))
    client.force_authenticate(user=user, token=token)
    return client


@pytest.fixture
def api(resident):
    return api_for(resident.user)


def give(resident, partner, text, **kwargs):
    return services.consent_give(
        resident_id=resident.pk, company_id=resident.company_id, partner=partner, text=text, **kwargs
    )
