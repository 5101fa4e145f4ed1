"""Allowlist sync to the sandbox partner: barriers keep working while our service is unreachable."""

import uuid

import pytest
from django.utils import timezone

from access import services as access_services
from access.models import VehiclePlateToken
from access.services.allowlist import allowlist_entries, allowlist_push_all, allowlist_push_full, site_ref
from consent.models import Consent, FaceEnrolment
from consent.services import consent_give, consent_text_publish
from partners.models import OutboxMessage
from tests import factories
from tests.infra import free_port
from tests.partners import outbox_fixtures

client_settings = outbox_fixtures.client_settings
sandbox_partner = outbox_fixtures.sandbox_partner

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def site(sandbox_partner, clean_sandbox):
    building = factories.building()
    factories.contract(partner_=sandbox_partner, company_=building.company, buildings=[building])
    barrier = factories.device(building_=building, partner_=sandbox_partner, kind="barrier",
                               partner_device_ref="gate-1")
    door = factories.device(building_=building, partner_=sandbox_partner, partner_device_ref="door-1")
    resident = factories.resident(unit_=factories.unit(building_=building))
    grant = factories.grant(resident_=resident, building_=building)
    vehicle = factories.vehicle(resident_=resident)
    plate = VehiclePlateToken.objects.get(vehicle=vehicle, partner=sandbox_partner).token
    text = consent_text_publish(version=f"v{uuid.uuid4().hex[:6]}", body="Согласие")
    consent = consent_give(resident_id=resident.pk, company_id=building.company_id, partner=sandbox_partner,
                           text=text)
    subject = "sub_" + uuid.uuid4().hex
    FaceEnrolment.objects.create(consent=consent, partner=sandbox_partner, resident_id=resident.pk,
                                 subject_id=subject, status="active")
    # our service is "stopped": nothing listens where the partner would ask
    clean_sandbox.control.configure_smarthome(f"https://127.0.0.1:{free_port()}", decision_timeout_s=0.5)
    return {"building": building, "barrier": barrier, "door": door, "resident": resident, "grant": grant,
            "plate": plate, "subject": subject, "sandbox": clean_sandbox, "partner": sandbox_partner}


def test_entries_hold_tokens_and_device_refs_only(site):
    entries = allowlist_entries(partner_id=site["partner"].pk, building_id=site["building"].pk)
    assert {(e["type"], e["token"]) for e in entries} == {("plate", site["plate"]), ("face", site["subject"])}
    assert all(e["device_refs"] == ["door-1", "gate-1"] for e in entries)
    assert set(entries[0]) == {"type", "token", "device_refs", "valid_from", "valid_until"}


def test_barrier_opens_from_the_allowlist_while_we_are_down_and_revocation_is_pushed(site):
    sandbox = site["sandbox"]
    assert sandbox.control.arrival("gate-1", "plate", site["plate"])["decision"] == "deny"  # nothing pushed yet
    assert allowlist_push_full(partner_id=site["partner"].pk, building_id=site["building"].pk) == 2
    message = OutboxMessage.objects.get(operation="allowlist_put")
    assert message.status == "delivered"
    assert sandbox.control.state()["allowlists"][site_ref(site["building"].pk)]["version"] == message.payload["version"]

    car = sandbox.control.arrival("gate-1", "plate", site["plate"])
    assert (car["decision"], car["source"], car["fallback_reason"]) == ("allow", "local_allowlist", "unreachable")
    face = sandbox.control.arrival("door-1", "face", site["subject"])
    assert (face["decision"], face["source"]) == ("allow", "local_allowlist")
    assert sandbox.control.arrival("gate-1", "plate", "x" * 43)["decision"] == "deny"

    # the subject's consent is revoked and the resident's grant suspended; the next push removes them
    Consent.objects.update(revoked_at=timezone.now(), revoked_reason="resident")
    access_services.grant_suspend(grant=site["grant"])
    allowlist_push_full(partner_id=site["partner"].pk, building_id=site["building"].pk)
    assert sandbox.control.arrival("door-1", "face", site["subject"])["decision"] == "deny"
    assert sandbox.control.arrival("gate-1", "plate", site["plate"])["decision"] == "deny"


def test_nightly_push_covers_every_contracted_site(site):
    assert allowlist_push_all() == 1
    assert OutboxMessage.objects.filter(operation="allowlist_put", status="delivered").count() == 1
