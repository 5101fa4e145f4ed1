"""Allowlist sync to the sandbox partner: barriers keep working while our service is unreachable,
and every change reaches the partner as an incremental patch (in version order, replay-safe)."""

import uuid

import pytest

from access.models import VehiclePlateToken
from access.services.allowlist import allowlist_entries, allowlist_push_all, allowlist_push_full, site_ref
from access.services.grants import grant_resume, grant_suspend
from access.services.vehicles import vehicle_delete
from consent.models import FaceEnrolment
from consent.services import consent_give, consent_revoke, consent_text_publish, face_enrol
from partners.client import partner_connection_for, patch_allowlist
from partners.models import OutboxMessage
from partners.services import partner_credentials_rotate
from tests import factories
from tests.consent.conftest import make_photo
from tests.infra import free_port
from tests.partners import outbox_fixtures

client_settings = outbox_fixtures.client_settings
sandbox_partner = outbox_fixtures.sandbox_partner

pytestmark = [pytest.mark.partner, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def site(sandbox_partner, clean_sandbox):
    """A building of the sandbox partner (barrier gate-1, door door-1) and a resident with a car, a
    grant and a face enrolled through the outbox. Our service is "stopped": nothing listens where
    the partner would ask, so every arrival is decided from the partner's local allowlist."""
    issued = partner_credentials_rotate(
        partner=sandbox_partner, client_id=clean_sandbox.client_id, client_secret=clean_sandbox.client_secret,
        partner_public_key_pem=clean_sandbox.pki["partner-jwe.pub.pem"].read_text(),
    )
    clean_sandbox.control.configure_smarthome(
        f"https://127.0.0.1:{free_port()}", decision_timeout_s=0.5,
        outbound_webhook_secret=issued.secrets["outbound_webhook_secret"],
    )
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
    enrolment = face_enrol(resident_id=resident.pk, partner=sandbox_partner, photo=make_photo())
    return {"building": building, "barrier": barrier, "door": door, "resident": resident, "grant": grant,
            "vehicle": vehicle, "plate": plate, "consent": consent, "subject": enrolment.subject_id,
            "enrolment": enrolment, "sandbox": clean_sandbox, "partner": sandbox_partner}


def decide(site, device_ref: str, kind: str) -> str:
    token = site["plate"] if kind == "plate" else site["subject"]
    answer = site["sandbox"].control.arrival(device_ref, kind, token)
    assert answer["source"] == "local_allowlist", answer
    return answer["decision"]


def applied(site) -> list[tuple[str, int]]:
    """(operation, version) of every allowlist call the partner answered 200, in arrival order."""
    versions = dict(OutboxMessage.objects.filter(operation__startswith="allowlist")
                    .values_list("idempotency_key", "payload__version"))
    return [(e["operation"], versions[e["request_id"]]) for e in site["sandbox"].control.log()["entries"]
            if e["operation"].startswith("allowlist") and e["http_status"] == 200]


def test_entries_hold_tokens_and_device_refs_only(site):
    entries = allowlist_entries(partner_id=site["partner"].pk, building_id=site["building"].pk)
    assert {(e["type"], e["token"]) for e in entries} == {("plate", site["plate"]), ("face", site["subject"])}
    assert all(e["device_refs"] == ["door-1", "gate-1"] for e in entries)
    assert set(entries[0]) == {"type", "token", "device_refs", "valid_from", "valid_until"}


def test_changes_reach_the_partner_as_patches_and_its_offline_decisions_follow(site):
    # the car (vehicle_create) and the face (enrolment acknowledged) arrived as patches: the only
    # full lists are the ones attaching each device sent, before there was anyone to list
    assert FaceEnrolment.objects.get(pk=site["enrolment"].pk).status == "delivered"
    full = OutboxMessage.objects.filter(operation="allowlist_put")
    assert full.count() == 2
    assert [m.payload["entries"] for m in full] == [[], []]
    assert decide(site, "gate-1", "plate") == "allow"
    assert decide(site, "door-1", "face") == "allow"
    assert site["sandbox"].control.arrival("gate-1", "plate", "x" * 43)["decision"] == "deny"

    grant_suspend(grant=site["grant"])
    assert (decide(site, "gate-1", "plate"), decide(site, "door-1", "face")) == ("deny", "deny")
    grant_resume(grant=site["grant"])
    assert (decide(site, "gate-1", "plate"), decide(site, "door-1", "face")) == ("allow", "allow")

    consent_revoke(consent=site["consent"])  # the revoked subject no longer opens the door
    assert (decide(site, "gate-1", "plate"), decide(site, "door-1", "face")) == ("allow", "deny")
    vehicle_delete(vehicle=site["vehicle"])
    assert decide(site, "gate-1", "plate") == "deny"

    patches = OutboxMessage.objects.filter(operation="allowlist_patch").order_by("pk")
    assert set(patches.values_list("status", flat=True)) == {"delivered"}
    versions = [m.payload["version"] for m in patches]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    state = site["sandbox"].control.state()
    assert state["allowlists"][site_ref(site["building"].pk)] == {"version": versions[-1], "entries": []}
    changed = sorted(e["data"]["version"] for e in state["events_received"] if e["type"] == "allowlist.changed")
    attached = [m.payload["version"] for m in OutboxMessage.objects.filter(operation="allowlist_put")]
    assert changed == sorted(attached + versions)  # each list sent was announced by a signed allowlist.changed event
    revoked = [e["data"] for e in state["events_received"] if e["type"] == "subject.revoked"]
    assert revoked == [{"subject_id": site["subject"], "reason": "resident"}]


def test_full_push_then_patches_apply_in_version_order_and_a_replayed_patch_is_harmless(site):
    before = len(applied(site))
    assert allowlist_push_full(partner_id=site["partner"].pk, building_id=site["building"].pk) == 2
    grant_suspend(grant=site["grant"])
    grant_resume(grant=site["grant"])
    calls = applied(site)[before:]
    assert [op for op, _ in calls] == ["allowlist.replace", "allowlist.patch", "allowlist.patch"]
    assert [v for _, v in calls] == sorted(v for _, v in calls)
    held = site["sandbox"].control.state()["allowlists"][site_ref(site["building"].pk)]
    assert held["version"] == calls[-1][1]

    suspend = OutboxMessage.objects.filter(operation="allowlist_patch").order_by("pk").reverse()[1]
    replay = patch_allowlist(partner_connection_for(site["partner"]), site_ref=suspend.payload["site_ref"],
                             version=suspend.payload["version"], upserts=suspend.payload["upserts"],
                             removals=suspend.payload["removals"], idempotency_key=f"replay-{uuid.uuid4().hex}")
    assert replay.superseded  # 409 version_conflict: the partner keeps the newer list
    assert site["sandbox"].control.state()["allowlists"][site_ref(site["building"].pk)] == held
    assert decide(site, "gate-1", "plate") == "allow"


def test_nightly_push_covers_every_contracted_site(site):
    attached = OutboxMessage.objects.filter(operation="allowlist_put").count()  # one per device attached
    assert allowlist_push_all() == 1
    assert OutboxMessage.objects.filter(operation="allowlist_put", status="delivered").count() == attached + 1
