"""Fixtures of the master-data tests: integration clients (OAuth2 client credentials) per company."""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application, set_token_value
from rest_framework.test import APIClient

SOURCE = "tenant-core"
RECORDS = "/integration/v1/records"
RECONCILIATION = "/integration/v1/reconciliation"


@dataclass
class Integration:
    client_id: str
    secret: str
    application: Application
    api: APIClient

    def send(self, records, **kwargs):
        return self.api.post(RECORDS, records, format="json", **kwargs)

    def results(self, records) -> list[dict]:
        response = self.send(records)
        assert response.status_code == 200, response.content
        return response.json()["results"]


def token_for(application, scope: str = "masterdata:write") -> str:
    raw = secrets.token_urlsafe(32)
    token = AccessToken(user=None, application=application, scope=scope,
                        expires=timezone.now() + datetime.timedelta(minutes=5))
    set_token_value(token, raw)
    token.save()
    return raw


def make_integration(settings, client_id: str, companies: list[str], source: str = SOURCE) -> Integration:
    secret = secrets.token_urlsafe(24)
    application = Application.objects.create(
        name=client_id, client_id=client_id, client_secret=secret, client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    settings.MASTERDATA_CLIENTS = {**settings.MASTERDATA_CLIENTS, client_id: {"source": source, "companies": companies}}
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(application)}")
    return Integration(client_id=client_id, secret=secret, application=application, api=api)


@pytest.fixture
def north(settings, db) -> Integration:
    """tenant-core's client for the company TC-NORTH."""
    settings.MASTERDATA_CLIENTS = {}
    return make_integration(settings, "tenant-core-north", ["TC-NORTH"])


@pytest.fixture
def south(settings, north) -> Integration:
    """Another client of the same source, for the company TC-SOUTH only."""
    return make_integration(settings, "tenant-core-south", ["TC-SOUTH"])


def company(external="TC-NORTH", version=1, name="УК «Северная»"):
    return {"type": "company", "id": external, "version": version, "name": name}


def building(external="B-1", version=1, company_="TC-NORTH", name="Корпус 1", timezone_="Europe/Moscow"):
    return {"type": "building", "id": external, "version": version, "company": company_, "name": name,
            "address": "Москва, ул. Полярная, 7", "timezone": timezone_}


def unit(external="U-1", version=1, building_="B-1", number="101"):
    return {"type": "unit", "id": external, "version": version, "building": building_, "number": number}


def resident(external="R-1", version=1, company_="TC-NORTH", name="Иванова Мария Петровна", phone="+79160000001",
             email="m.ivanova@example.ru"):
    return {"type": "resident", "id": external, "version": version, "company": company_, "full_name": name,
            "phone": phone, "email": email}


def residency(external="RS-1", version=1, resident_="R-1", unit_="U-1", valid_from="2026-01-01", valid_until=None,
              kind="owner"):
    return {"type": "residency", "id": external, "version": version, "resident": resident_, "unit": unit_,
            "kind": kind, "valid_from": valid_from, "valid_until": valid_until}


def vehicle(external="V-1", version=1, resident_="R-1", plate="А123ВС77", label=""):
    return {"type": "vehicle", "id": external, "version": version, "resident": resident_, "plate": plate,
            "label": label}


def estate() -> list[dict]:
    """A company, a building, a flat, a resident living there and their car."""
    return [company(), building(), unit(), resident(), residency(), vehicle()]
