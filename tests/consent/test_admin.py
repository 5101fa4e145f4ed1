"""Consent admin: compliance officers see their companies' consents only, read-only, and export CSV."""

import pytest

from consent.models import Consent
from core.security.roles import COMPLIANCE_OFFICER, PROPERTY_MANAGER
from tests import factories
from tests.admin.conftest import login_verified, staff_user
from tests.consent.conftest import give

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def consents(consent_text):
    partner = factories.partner()
    rows = {}
    for key in ("a", "b"):
        building = factories.building()
        resident = factories.resident(unit_=factories.unit(building_=building))
        factories.contract(partner_=partner, company_=building.company, buildings=[building])
        rows[key] = give(resident, partner, consent_text, building_id=building.pk)
    return rows


def test_compliance_officer_sees_own_company_only_and_exports(client, consents):
    mine, foreign = consents["a"], consents["b"]
    officer = staff_user("compliance-consent", company=_company(mine), roles=[COMPLIANCE_OFFICER])
    login_verified(client, officer)
    listing = client.get("/admin/consent/consent/")
    assert listing.status_code == 200
    assert f"/admin/consent/consent/{mine.pk}/change/" in listing.text
    assert f"/admin/consent/consent/{foreign.pk}/change/" not in listing.text
    assert client.get(f"/admin/consent/consent/{foreign.pk}/change/").status_code == 404
    export = client.post("/admin/consent/consent/", {"action": "export_csv", "_selected_action": [mine.pk, foreign.pk]})
    assert export.status_code == 200
    lines = export.content.decode().strip().splitlines()
    assert lines[0].startswith("id,resident_id")
    assert [line.split(",")[0] for line in lines[1:]] == [str(mine.pk)]
    # read-only: the revoke action is not offered and does nothing
    client.post("/admin/consent/consent/", {"action": "revoke", "_selected_action": [mine.pk]})
    assert Consent.objects.get(pk=mine.pk).revoked_at is None


def test_property_manager_has_no_consent_admin(client, consents):
    manager = staff_user("manager-consent", company=_company(consents["a"]), roles=[PROPERTY_MANAGER])
    login_verified(client, manager)
    assert client.get("/admin/consent/consent/").status_code == 403


def _company(consent):
    from access.models import ManagementCompany

    return ManagementCompany.objects.get(pk=consent.company_id)


def test_a_superuser_publishes_a_consent_text_for_a_partner_through_the_service(client):
    from consent.models import ConsentText

    partner, other = factories.partner(), factories.partner()
    login_verified(client, staff_user("root-texts", superuser=True))
    form = {"partner": partner.pk, "company_id": "", "purpose": "face_access", "version": "2025-04",
            "language": "en", "body": "I consent to face recognition by the partner."}
    assert client.post("/admin/consent/consenttext/add/", form).status_code == 302
    text = ConsentText.objects.get()
    assert (text.partner, text.language, text.version) == (partner, "en", "2025-04")
    # the same wording for another partner is a form error (a text names its partner), not a 500
    refused = client.post("/admin/consent/consenttext/add/", {**form, "partner": other.pk, "version": "x"})
    assert refused.status_code == 200
    assert "already published" in refused.text
    assert ConsentText.objects.count() == 1
