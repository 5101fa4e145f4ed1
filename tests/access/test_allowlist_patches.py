"""Incremental allowlist patches: every change point enqueues exactly the right `allowlist_patch`
(upserts/removals) for the affected (partner, site) pairs and nothing for the others, in the
change's own transaction, followed by an `allowlist.changed` event. Real PostgreSQL; the
outbox messages are only written here (delivery to the sandbox: test_allowlist_sync.py)."""

import datetime
import time
import uuid

import pytest
from django.db import transaction
from django.utils import timezone

from access.models import VehiclePlateToken
from access.services.allowlist import (
    allowlist_entries,
    allowlist_push_full,
    allowlist_resident_changed,
    allowlist_resident_entries,
    site_ref,
)
from access.services.devices import device_create
from access.services.grants import grant_create, grant_delete, grant_resume, grant_suspend
from access.services.guest_passes import guest_pass_create
from access.services.residencies import residency_end
from access.services.residents import resident_update
from access.services.vehicles import vehicle_delete, vehicle_update
from consent.services import consent_revoke, subject_id_for
from partners.models import OutboxMessage
from partners.outbound_events import DATA_KEYS
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def plate_of(vehicle, partner) -> str:
    return VehiclePlateToken.objects.get(vehicle=vehicle, partner=partner).token


@pytest.fixture
def world():
    """Partner P over building A (gate + door), a resident with a car, a grant and an enrolled face;
    partner Q over building B with its own resident and car (never affected by A's changes)."""
    company = factories.company()
    a, b = factories.building(company_=company), factories.building(company_=company)
    p, q = factories.partner(), factories.partner()
    factories.contract(partner_=p, company_=company, buildings=[a])
    factories.contract(partner_=q, company_=company, buildings=[b])
    factories.device(building_=a, partner_=p, kind="barrier", partner_device_ref="gate-a")
    factories.device(building_=a, partner_=p, partner_device_ref="door-a")
    factories.device(building_=b, partner_=q, kind="barrier", partner_device_ref="gate-b")
    resident = factories.resident(unit_=factories.unit(building_=a))
    grant = factories.grant(resident_=resident, building_=a)
    car = factories.vehicle(resident_=resident)
    subject = subject_id_for(partner_id=p.pk, resident_id=resident.pk)
    consent = factories.face_enrolment(resident_=resident, partner_=p, subject_id=subject).consent
    neighbour = factories.resident(unit_=factories.unit(building_=b))
    factories.grant(resident_=neighbour, building_=b)
    factories.vehicle(resident_=neighbour)
    return {"a": a, "b": b, "p": p, "q": q, "resident": resident, "grant": grant, "car": car, "consent": consent,
            "subject": subject, "plate": plate_of(car, p), "company": company, "neighbour": neighbour,
            "mark": OutboxMessage.objects.order_by("-pk").values_list("pk", flat=True).first()}


def new_messages(world, operation=None):
    messages = OutboxMessage.objects.filter(pk__gt=world["mark"]).order_by("pk")
    return list(messages.filter(operation=operation) if operation else messages)


def patches(world) -> list[dict]:
    return [{"partner": m.partner_id, **m.payload} for m in new_messages(world, "allowlist_patch")]


def keys(entries) -> set[tuple[str, str]]:
    return {(e["type"], e["token"]) for e in entries}


def only_patch(world) -> dict:
    found = patches(world)
    assert len(found) == 1, found
    patch = found[0]
    assert (patch["partner"], patch["site_ref"]) == (world["p"].pk, site_ref(world["a"].pk))
    return patch


def test_resident_entries_are_the_full_lists_entries_of_that_resident(world):
    full = allowlist_entries(partner_id=world["p"].pk, building_id=world["a"].pk)
    mine = allowlist_resident_entries(partner_id=world["p"].pk, building_id=world["a"].pk,
                                      resident_id=world["resident"].pk)
    assert keys(mine) == {("plate", world["plate"]), ("face", world["subject"])}
    assert mine == [e for e in full if (e["type"], e["token"]) in keys(mine)]
    assert allowlist_resident_entries(partner_id=world["p"].pk, building_id=world["a"].pk,
                                      resident_id=world["neighbour"].pk) == []


def test_vehicle_create_upserts_its_token_at_the_partners_that_know_it(world):
    car = factories.vehicle(resident_=world["resident"])
    patch = only_patch(world)
    assert keys(patch["upserts"]) == {("plate", world["plate"]), ("plate", plate_of(car, world["p"])),
                                      ("face", world["subject"])}
    assert patch["removals"] == []
    assert all(e["device_refs"] == ["door-a", "gate-a"] for e in patch["upserts"])


def test_vehicle_plate_change_removes_the_old_token_and_adds_the_new(world):
    vehicle_update(vehicle=world["car"], plate=factories.unique_plate())
    patch = only_patch(world)
    new_token = plate_of(world["car"], world["p"])
    assert new_token != world["plate"]
    assert keys(patch["upserts"]) == {("plate", new_token), ("face", world["subject"])}
    assert patch["removals"] == [{"type": "plate", "token": world["plate"]}]


def test_label_change_patches_nothing(world):
    vehicle_update(vehicle=world["car"], label="Рабочая")
    assert new_messages(world) == []


def test_vehicle_delete_removes_its_token(world):
    vehicle_delete(vehicle=world["car"])
    patch = only_patch(world)
    assert keys(patch["upserts"]) == {("face", world["subject"])}
    assert patch["removals"] == [{"type": "plate", "token": world["plate"]}]


def test_grant_suspend_removes_every_credential_and_resume_restores_them(world):
    grant_suspend(grant=world["grant"])
    patch = only_patch(world)
    assert patch["upserts"] == []
    assert keys(patch["removals"]) == {("plate", world["plate"]), ("face", world["subject"])}
    grant_resume(grant=world["grant"])
    resumed = patches(world)[-1]
    assert keys(resumed["upserts"]) == {("plate", world["plate"]), ("face", world["subject"])}
    assert resumed["removals"] == []


def test_grant_create_and_delete_for_another_resident(world):
    other = factories.resident(unit_=factories.unit(building_=world["a"]))
    car = factories.vehicle(resident_=other)  # no grant yet: listed nowhere, nothing to patch
    assert patches(world) == []
    grant = grant_create(resident=other, building=world["a"])
    patch = only_patch(world)
    assert keys(patch["upserts"]) == {("plate", plate_of(car, world["p"]))}
    assert patch["removals"] == []
    grant_delete(grant=grant)
    deleted = patches(world)[-1]
    assert deleted["upserts"] == []
    assert deleted["removals"] == [{"type": "plate", "token": plate_of(car, world["p"])}]


def test_resident_suspension_and_its_lifting(world):
    resident_update(resident=world["resident"], suspended=True)
    patch = only_patch(world)
    assert patch["upserts"] == []
    assert keys(patch["removals"]) == {("plate", world["plate"]), ("face", world["subject"])}
    resident_update(resident=world["resident"], suspended=False)
    assert keys(patches(world)[-1]["upserts"]) == {("plate", world["plate"]), ("face", world["subject"])}
    resident_update(resident=world["resident"], phone="+79160000000")
    assert len(patches(world)) == 2  # a phone change is no allowlist change


def test_consent_revocation_removes_the_subject_and_announces_it(world):
    consent_revoke(consent=world["consent"])
    patch = only_patch(world)
    assert keys(patch["upserts"]) == {("plate", world["plate"])}
    assert patch["removals"] == [{"type": "face", "token": world["subject"]}]
    events = [m.payload for m in new_messages(world, "event_out")]
    revoked = [e for e in events if e["type"] == "subject.revoked"]
    assert [e["data"] for e in revoked] == [{"subject_id": world["subject"], "reason": "resident"}]


def test_move_out_removes_the_resident_from_the_site(world):
    residency = world["resident"].residencies.get()
    residency.valid_from = timezone.localdate() - datetime.timedelta(days=30)
    residency.save(update_fields=["valid_from"])
    grant = grant_create(residency=residency, building=world["a"],
                                         valid_from=timezone.now() - datetime.timedelta(days=1))
    grant_delete(grant=world["grant"])  # only the residency's grant is left
    world["mark"] = new_messages(world)[-1].pk
    residency_end(residency=residency)
    found = patches(world)
    assert found
    assert {(p["partner"], p["site_ref"]) for p in found} == {(world["p"].pk, site_ref(world["a"].pk))}
    assert found[0]["upserts"] == []
    assert {("plate", world["plate"])} <= keys(found[0]["removals"])
    assert ("face", world["subject"]) in set().union(*(keys(p["removals"]) for p in found))
    grant.refresh_from_db()
    assert grant.valid_until <= timezone.now()


def test_guest_passes_are_not_in_the_allowlist(world):
    gate = world["a"].devices.get(partner_device_ref="gate-a")
    guest_pass_create(resident=world["resident"], device=gate, plate=factories.unique_plate(),
                      valid_until=timezone.now() + datetime.timedelta(hours=2))
    assert patches(world) == []


def test_patches_are_written_in_the_changes_transaction(world):
    written = []

    @transaction.atomic
    def change_that_fails():
        grant_suspend(grant=world["grant"])
        written.extend(patches(world))
        raise RuntimeError("the change fails after the patch was written")

    with pytest.raises(RuntimeError, match="fails after"):
        change_that_fails()
    assert len(written) == 1
    assert new_messages(world) == []


def test_every_patch_is_followed_by_an_allowlist_changed_event_with_codes_only(world):
    grant_suspend(grant=world["grant"])
    consent_revoke(consent=world["consent"])
    factories.vehicle(resident_=world["resident"])
    versions = [(p["site_ref"], p["version"]) for p in patches(world)]
    events = [m.payload for m in new_messages(world, "event_out")]
    changed = [(e["data"]["site_ref"], e["data"]["version"]) for e in events if e["type"] == "allowlist.changed"]
    assert changed == versions
    resident = world["resident"]
    for event in events:
        assert set(event) == {"type", "timestamp", "data"}
        assert set(event["data"]) <= DATA_KEYS
        text = str(event)
        for personal in (resident.full_name, resident.phone, resident.email, world["car"].plate):
            assert personal not in text
    assert {m.partner_id for m in new_messages(world)} == {world["p"].pk}


def test_versions_strictly_increase_per_site_even_within_one_millisecond(world):
    ahead = int(time.time() * 1000) + 10_000_000  # a full push "from the future" (clock skew)
    OutboxMessage.objects.create(
        partner=world["p"], operation="allowlist_put", ordering_key=f"allowlist:{site_ref(world['a'].pk)}",
        idempotency_key=f"future-{uuid.uuid4().hex[:8]}", payload={"site_ref": site_ref(world["a"].pk),
                                                                   "version": ahead, "entries": []},
    )
    for _ in range(3):
        allowlist_resident_changed(resident_id=world["resident"].pk)
    allowlist_push_full(partner_id=world["p"].pk, building_id=world["a"].pk)
    versions = [m.payload["version"] for m in new_messages(world) if m.operation.startswith("allowlist")]
    assert versions == [ahead, ahead + 1, ahead + 2, ahead + 3, ahead + 4]
    # another site of the same partner keeps its own clock
    other_site = [m.payload["version"] for m in OutboxMessage.objects.filter(
        partner=world["q"], operation__startswith="allowlist")]
    assert all(v < ahead for v in other_site)


def test_nothing_for_unaffected_sites_and_partners(world):
    grant_suspend(grant=world["grant"])
    vehicle_update(vehicle=world["car"], plate=factories.unique_plate())
    consent_revoke(consent=world["consent"])
    assert {(p["partner"], p["site_ref"]) for p in patches(world)} == {(world["p"].pk, site_ref(world["a"].pk))}
    assert not OutboxMessage.objects.filter(pk__gt=world["mark"], partner=world["q"]).exists()


def test_a_new_device_pushes_its_site_to_its_partner(world):
    device_create(building=world["a"], kind="barrier", name="Въезд 2", partner=world["p"],
                  partner_device_ref="gate-a-2")
    (full,) = new_messages(world, "allowlist_put")
    assert (full.partner_id, full.payload["site_ref"]) == (world["p"].pk, site_ref(world["a"].pk))
    assert keys(full.payload["entries"]) == {("plate", world["plate"]), ("face", world["subject"])}
    assert all("gate-a-2" in entry["device_refs"] for entry in full.payload["entries"])
    assert not new_messages(world, "allowlist_patch")


def test_a_partners_first_device_at_a_site_gives_it_the_sites_list(world):
    factories.contract(partner_=world["q"], company_=world["company"], buildings=[world["a"], world["b"]])
    world["mark"] = OutboxMessage.objects.order_by("-pk").values_list("pk", flat=True).first()
    device_create(building=world["a"], kind="barrier", name="Въезд Q", partner=world["q"],
                  partner_device_ref="gate-a-q")
    (full,) = new_messages(world, "allowlist_put")
    assert (full.partner_id, full.payload["site_ref"]) == (world["q"].pk, site_ref(world["a"].pk))
    assert keys(full.payload["entries"]) == {("plate", plate_of(world["car"], world["q"]))}


def test_a_new_contract_pushes_the_partners_sites_in_full(world):
    factories.contract(partner_=world["q"], company_=world["company"], buildings=[world["a"], world["b"]])
    full = [m for m in new_messages(world, "allowlist_put") if m.partner_id == world["q"].pk]
    assert [m.payload["site_ref"] for m in full] == [site_ref(world["b"].pk)]  # Q has devices only in B
