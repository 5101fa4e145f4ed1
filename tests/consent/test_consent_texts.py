"""The consent text the app shows (GET consent-texts) and giving consent with its SHA-256."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from rest_framework.test import APIClient

from access.models import Resident
from consent import services
from consent.models import Consent
from core.api.schema import api_schema
from partners.models import Partner
from tests import factories
from tests.consent.conftest import api_for

pytestmark = pytest.mark.django_db

TEXTS = "/api/v1/consent-texts"


def give_with(api, partner, sha256):
    return api.post("/api/v1/consents", {"partner": partner.pk, "text_sha256": sha256}, format="json")


@pytest.fixture
def partner(home):
    building, _resident = home
    partner = factories.partner()
    factories.contract(partner_=partner, company_=building.company, buildings=[building])
    return partner


def publish(partner, language="ru", version="1", body=None, **scope):
    body = body or f"Согласие ({language}) на обработку изображения лица партнёром {partner.name}, версия {version}."
    return services.consent_text_publish(version=version, body=body, language=language, partner=partner, **scope)


def test_a_fresh_demo_lets_a_resident_read_the_text_and_consent():
    call_command("seed_demo", stdout=io.StringIO(), stderr=io.StringIO())
    user = Resident.objects.get(user__username="resident1").user
    sandbox = Partner.objects.get(slug="sandbox")
    api = api_for(user)

    russian = api.get(TEXTS, {"partner": sandbox.pk}, HTTP_ACCEPT_LANGUAGE="ru-RU,ru;q=0.9,en;q=0.8")
    assert russian.status_code == 200, russian.content
    text = russian.json()
    assert (text["partner"], text["purpose"], text["language"], text["languages"]) == (
        sandbox.pk, "face_access", "ru", ["en", "ru"])
    assert text["sha256"] == hashlib.sha256(text["body"].encode()).hexdigest()
    assert russian["Content-Language"] == "ru"
    for must in ("152-ФЗ", "УК Северный квартал", "Sandbox partner", "по поручению оператора", "Цель обработки",
                 "30 дней", "Отзыв", "Отозвать"):
        assert must in text["body"], must
    english = api.get(TEXTS, {"partner": sandbox.pk, "language": "en"}).json()
    assert english["language"] == "en"
    assert english["version"] == text["version"]
    for must in ("152-FZ", "Operator", "Processor acting on the operator's instruction", "Purpose", "Revocation"):
        assert must in english["body"], must

    wrong = give_with(api, sandbox, "0" * 64)
    assert wrong.status_code == 400
    assert [(e["field"], e["code"]) for e in wrong.json()["errors"]] == [("text_sha256", "does_not_exist")]
    assert not Consent.objects.exists()

    given = give_with(api, sandbox, english["sha256"])
    assert given.status_code == 201, given.content
    assert (given.json()["text_sha256"], given.json()["text_version"]) == (english["sha256"], english["version"])
    assert Consent.objects.get().text.language == "en"


def test_language_negotiation(resident, partner):
    publish(partner, "ru")
    publish(partner, "en")
    api = api_for(resident.user)
    assert api.get(TEXTS, {"partner": partner.pk}).json()["language"] == "ru"  # the residents' language
    for header, language in (("en-GB,en;q=0.9", "en"), ("de-DE, en;q=0.5, ru;q=0.4", "en"), ("de", "ru"),
                             ("en;q=0, ru;q=0.1", "ru"), ("*", "ru"), ("garbage;q=x", "ru")):
        response = api.get(TEXTS, {"partner": partner.pk}, HTTP_ACCEPT_LANGUAGE=header)
        assert response.json()["language"] == language, header
        assert "Accept-Language" in response["Vary"]
    assert api.get(TEXTS, {"partner": partner.pk, "language": "en"}, HTTP_ACCEPT_LANGUAGE="ru").json()[
        "language"] == "en"
    unknown = api.get(TEXTS, {"partner": partner.pk, "language": "de"})
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["field"] == "language"


def test_a_missing_translation_is_404_when_asked_for_and_the_other_language_otherwise(resident, partner):
    publish(partner, "ru")
    api = api_for(resident.user)
    assert api.get(TEXTS, {"partner": partner.pk, "language": "en"}).status_code == 404
    assert api.get(TEXTS, {"partner": partner.pk}, HTTP_ACCEPT_LANGUAGE="en").json()["language"] == "ru"


def test_the_most_specific_newest_text_is_current(resident, partner):
    api = api_for(resident.user)
    services.consent_text_publish(version="any", body="Согласие для любого партнёра.")
    assert api.get(TEXTS, {"partner": partner.pk}).json()["version"] == "any"
    publish(partner, version="1")
    assert api.get(TEXTS, {"partner": partner.pk}).json()["version"] == "1"
    publish(partner, version="2")
    assert api.get(TEXTS, {"partner": partner.pk}).json()["version"] == "2"
    other_company = factories.company()
    publish(partner, version="theirs", company_id=other_company.pk)
    assert api.get(TEXTS, {"partner": partner.pk}).json()["version"] == "2"
    publish(partner, version="ours", company_id=resident.company_id)
    current = api.get(TEXTS, {"partner": partner.pk}).json()
    assert (current["version"], current["languages"]) == ("ours", ["ru"])


def test_unknown_or_foreign_partner_or_purpose_is_404(resident, partner):
    publish(partner)
    api = api_for(resident.user)
    foreign = factories.partner()
    factories.contract(partner_=foreign, company_=factories.company())  # serves another company only
    publish(foreign)
    no_faces = factories.partner()
    factories.contract(partner_=no_faces, company_=resident.company, allows_face=False)
    publish(no_faces)
    for params in ({"partner": 999999}, {"partner": foreign.pk}, {"partner": no_faces.pk},
                   {"partner": partner.pk, "purpose": "marketing"}):
        response = api.get(TEXTS, params)
        assert response.status_code == 404, params
        assert response.json()["type"].endswith("/consent-text-not-found")
    assert api.get(TEXTS, {"partner": "x"}).status_code == 400
    assert api.get(TEXTS).json()["errors"][0]["field"] == "partner"


def test_scopes_like_the_other_consent_endpoints(resident, partner):
    publish(partner)
    assert api_for(resident.user, scopes="history:read").get(TEXTS, {"partner": partner.pk}).status_code == 200
    refused = api_for(resident.user, scopes="devices:read").get(TEXTS, {"partner": partner.pk})
    assert (refused.status_code, refused.json()["type"]) == (403, "/problems/missing-scope")
    assert APIClient().get(TEXTS, {"partner": partner.pk}).status_code == 401
    not_a_resident = api_for(factories.staff_user()).get(TEXTS, {"partner": partner.pk})
    assert (not_a_resident.status_code, not_a_resident.json()["type"]) == (403, "/problems/not-a-resident")


def test_a_text_of_another_partner_or_purpose_is_a_field_error(resident, partner):
    api = api_for(resident.user)
    other = factories.partner()
    factories.contract(partner_=other, company_=resident.company)
    theirs = publish(other)
    refused = give_with(api, partner, theirs.sha256)
    assert refused.status_code == 400
    assert [(e["field"], e["code"]) for e in refused.json()["errors"]] == [("text_sha256", "text_not_applicable")]
    other_company = publish(partner, version="x", company_id=factories.company().pk)
    assert give_with(api, partner, other_company.sha256).json()["errors"][0]["code"] == "text_not_applicable"
    assert not Consent.objects.exists()
    assert give_with(api, partner, publish(partner).sha256).status_code == 201


def test_publishing_checks_language_and_scope(partner):
    with pytest.raises(ValidationError, match="Language"):
        publish(partner, language="de")
    text = publish(partner)
    assert publish(partner) == text  # idempotent
    with pytest.raises(ValidationError, match="already published"):
        services.consent_text_publish(version="1", body=text.body, language="ru", partner=factories.partner())


def test_the_schema_declares_the_endpoint():
    schema = api_schema()
    operation = schema["paths"]["/api/v1/consent-texts"]["get"]
    assert operation["operationId"] == "consent_texts_retrieve"
    assert {"200", "400", "401", "403", "404"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} >= {"partner", "purpose", "language"}
    body = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ConsentText"}
