"""Fixtures of the resident API tests: an estate served by the sandbox partner, and tokens."""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, get_application_model, set_token_value
from rest_framework.test import APIClient

from access.models import Device, Resident
from partners.models import Partner
from tests import factories
from tests.partners.outbox_fixtures import client_settings, sandbox_partner  # noqa: F401 - fixtures

ALL_SCOPES = "devices:read doors:open barriers:open video:view vehicles:write guests:write history:read"


@dataclass
class Estate:
    partner: Partner
    resident: Resident
    door: Device
    barrier: Device
    camera: Device
    other: Resident  # another resident of the same building, with their own grant
    foreign_door: Device  # a door of another company (covered by the same partner)
    sandbox: object


def make_token(user, scope: str = ALL_SCOPES, *, lifetime: datetime.timedelta = datetime.timedelta(minutes=5)) -> str:
    Application = get_application_model()
    app, _ = Application.objects.get_or_create(
        client_id="mobile-app-tests",
        defaults={"name": "Mobile app", "client_type": Application.CLIENT_PUBLIC,
                  "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
                  "redirect_uris": "ru.smarthome.app:/oauth2redirect", "algorithm": ""},
    )
    raw = secrets.token_urlsafe(32)
    token = AccessToken(user=user, application=app, scope=scope,
                        expires=timezone.now() + lifetime)
    set_token_value(token, raw)
    token.save()
    return raw


def api(user=None, scope: str = ALL_SCOPES) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user, scope)}")
    return client


@pytest.fixture
def estate(sandbox_partner, clean_sandbox) -> Estate:  # noqa: F811
    company = factories.company()
    building = factories.building(company_=company)
    resident = factories.resident(unit_=factories.unit(building_=building))
    factories.grant(resident_=resident, building_=building)
    other = factories.resident(unit_=factories.unit(building_=building))
    factories.grant(resident_=other, building_=building)
    devices = {}
    for kind in ("intercom_door", "barrier", "camera"):
        ref = f"{kind}-{secrets.token_hex(3)}"
        clean_sandbox.control.put_device(ref, online=True)
        devices[kind] = factories.device(building_=building, partner_=sandbox_partner, kind=kind,
                                         partner_device_ref=ref)
    factories.contract(partner_=sandbox_partner, company_=company, buildings=[building])
    foreign_building = factories.building()
    foreign_door = factories.device(building_=foreign_building, partner_=sandbox_partner,
                                    partner_device_ref=f"foreign-{secrets.token_hex(3)}")
    factories.contract(partner_=sandbox_partner, company_=foreign_building.company, buildings=[foreign_building])
    return Estate(partner=sandbox_partner, resident=resident, door=devices["intercom_door"],
                  barrier=devices["barrier"], camera=devices["camera"], other=other, foreign_door=foreign_door,
                  sandbox=clean_sandbox)
