"""Fixtures of the consent tests: a sandbox partner with a face key, a resident with a face
contract, a consent text, and an API client authenticated with an OAuth2 token of chosen scopes."""

from __future__ import annotations

import datetime
import io

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

TEXT = "Я даю согласие на обработку изображения моего лица для доступа в подъезд. Версия 1."


def make_photo(fmt="JPEG", size=(640, 480), colour=(120, 160, 200)) -> bytes:
    image = Image.new("RGB", size, colour)
    for x in range(0, size[0], 7):  # some detail, so the JPEG has distinctive bytes
        image.putpixel((x, (x * 13) % size[1]), (x % 256, (x * 3) % 256, (x * 7) % 256))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


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
