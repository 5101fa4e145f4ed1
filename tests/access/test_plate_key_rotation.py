"""A partner's plate-token key rotated with an overlap: decisions, allowlists and guest passes
accept tokens under the old and the new key until the old one is retired - explicitly, by an
emergency or a later rotation, or at the end of PLATE_TOKEN_KEY_OVERLAP_S - and never a token
under a key the partner was not handed."""

import datetime
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from access.models import GuestPass, VehiclePlateToken
from access.plates import plate_token
from access.services.allowlist import allowlist_entries
from access.services.guest_passes import guest_pass_create
from access.services.vehicles import vehicle_create, vehicle_delete
from audit.models import AuditEvent
from core.security.identifiers import user_ref
from partners import services as partner_services
from partners.models import OutboxMessage, PartnerCredentials
from tests import factories
from tests.access.decision_scene import Scene, build_scene
from tests.partners import partner_api

pytestmark = pytest.mark.django_db
partner_api_settings = partner_api.partner_api_settings
partner_caller = partner_api.partner_caller

URL = "/partner/v1/access-decisions"


@pytest.fixture
def staff():
    return factories.staff_user(superuser=True)


@pytest.fixture
def scene(partner_caller, dev_pki) -> Scene:
    """A partner with a JWE public key (its key material can be exported) and a resident's car."""
    rotate(partner_caller.partner, partner_public_key_pem=dev_pki["partner-jwe.pub.pem"].read_text())
    return build_scene(partner_caller)


def rotate(partner, **kwargs) -> PartnerCredentials:
    credentials = partner_services.partner_credentials_rotate(partner=partner, **kwargs).credentials
    factories.scope_change_committed(partner.pk)  # the after-commit task: tokens, then allowlists
    return credentials


def switch_and_retire(partner, *, actor):
    """The new material handed over (the partner switches to it), then the old key retired."""
    partner_services.partner_credentials_export(partner=partner, actor=actor)
    retired = partner_services.partner_plate_key_retire(partner=partner, actor=actor)
    factories.scope_change_committed(partner.pk)
    return retired


def decide(scene: Scene, token: str) -> tuple[str, str]:
    body = {"device_ref": scene.device.partner_device_ref, "credential": {"type": "plate", "token": token},
            "request_id": "req-" + uuid.uuid4().hex[:8], "observed_at": timezone.now().isoformat()}
    response = scene.caller.post(URL, body)
    assert response.status_code == 200, response.content
    return response.json()["decision"], response.json()["reason"]


def token_under(credentials: PartnerCredentials, plate: str) -> str:
    return plate_token(key=credentials.plate_token_key_bytes(), plate=plate)


def car_tokens(vehicle) -> set[tuple[int, str]]:
    return set(VehiclePlateToken.objects.filter(vehicle=vehicle).values_list("key_version", "token"))


def last_allowlist(partner, operation: str) -> dict:
    return OutboxMessage.objects.filter(partner=partner, operation=operation).latest("id").payload


def credential_events(partner) -> list[tuple[int, str, str]]:
    """(credentials version, reason, actor ref) of the partner's credentials audit events, in order."""
    versions = dict(PartnerCredentials.objects.filter(partner=partner).values_list("pk", "version"))
    events = AuditEvent.objects.filter(object_type="partner_credentials", partner_id=partner.pk).order_by("id")
    return [(versions[int(ref.split(":")[1])], reason, actor)
            for ref, reason, actor in events.values_list("object_ref", "reason", "actor_ref")]


def test_a_handed_over_key_is_accepted_with_the_new_one_until_it_is_retired(scene, staff):
    partner = scene.caller.partner
    old = PartnerCredentials.objects.current().get(partner=partner)
    partner_services.partner_credentials_export(partner=partner, actor=staff)
    new = rotate(partner, actor=staff)
    old_token, new_token = token_under(old, scene.vehicle.plate), token_under(new, scene.vehicle.plate)
    assert old_token == scene.plate_token

    assert car_tokens(scene.vehicle) == {(old.version, old_token), (new.version, new_token)}
    assert decide(scene, old_token) == ("allow", "granted")
    assert decide(scene, new_token) == ("allow", "granted")
    building_id = scene.device.building_id
    plates = {e["token"] for e in allowlist_entries(partner_id=partner.pk, building_id=building_id)
              if e["type"] == "plate"}
    assert plates == {old_token, new_token}
    pushed = {e["token"] for e in last_allowlist(partner, "allowlist_put")["entries"] if e["type"] == "plate"}
    assert pushed == {old_token, new_token}  # the full push after the rotation carries both

    retired = switch_and_retire(partner, actor=staff)

    assert [c.version for c in retired] == [old.version]
    assert PartnerCredentials.objects.get(pk=old.pk).plate_key_retired_at is not None
    assert car_tokens(scene.vehicle) == {(new.version, new_token)}
    assert decide(scene, old_token) == ("deny", "unknown_credential")
    assert decide(scene, new_token) == ("allow", "granted")
    pushed = {e["token"] for e in last_allowlist(partner, "allowlist_put")["entries"] if e["type"] == "plate"}
    assert pushed == {new_token}
    staff_ref = user_ref(staff)
    assert credential_events(partner)[-4:] == [
        (old.version, "handed_over", staff_ref), (new.version, "rotated", staff_ref),
        (new.version, "handed_over", staff_ref), (old.version, "retired", staff_ref),
    ]
    assert partner_services.partner_plate_key_retire(partner=partner, actor=staff) == []  # idempotent


def test_a_car_added_during_the_overlap_gets_both_tokens_and_its_patches_carry_both(scene, staff):
    partner = scene.caller.partner
    old = PartnerCredentials.objects.current().get(partner=partner)
    partner_services.partner_credentials_export(partner=partner, actor=staff)
    new = rotate(partner, actor=staff)

    vehicle = vehicle_create(resident=scene.resident, plate="Т555ТТ99")
    both = {token_under(old, "T555TT99"), token_under(new, "T555TT99")}
    assert {token for _, token in car_tokens(vehicle)} == both
    upserted = {e["token"] for e in last_allowlist(partner, "allowlist_patch")["upserts"] if e["type"] == "plate"}
    assert both <= upserted

    vehicle_delete(vehicle=vehicle)
    removed = {r["token"] for r in last_allowlist(partner, "allowlist_patch")["removals"]}
    assert removed == both


def test_the_overlap_adds_no_query_to_a_decision(scene, staff, settings):
    settings.VERSIONED_CACHE = False  # every fact is loaded: the lookups themselves are counted
    partner = scene.caller.partner
    old = PartnerCredentials.objects.current().get(partner=partner)
    decide(scene, scene.plate_token)  # warm: the caller's certificate and token lookups

    def queries(token: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert decide(scene, token) == ("allow", "granted")
        return len(captured)

    before = queries(scene.plate_token)
    partner_services.partner_credentials_export(partner=partner, actor=staff)
    new = rotate(partner, actor=staff)
    decide(scene, scene.plate_token)
    assert queries(token_under(old, scene.vehicle.plate)) == before
    assert queries(token_under(new, scene.vehicle.plate)) == before


def test_retiring_before_the_new_material_was_handed_over_is_refused(scene, staff):
    partner = scene.caller.partner
    partner_services.partner_credentials_export(partner=partner, actor=staff)
    rotate(partner, actor=staff)
    events = AuditEvent.objects.count()

    with pytest.raises(ValidationError) as refused:
        partner_services.partner_plate_key_retire(partner=partner, actor=staff)

    assert refused.value.error_dict["plate_token_key"][0].code == "not_handed_over"
    assert decide(scene, scene.plate_token) == ("allow", "granted")  # the old key still works
    assert PartnerCredentials.objects.filter(partner=partner, plate_key_retired_at__isnull=True).count() == 2
    assert AuditEvent.objects.exclude(action="access.decision").count() == events
    assert len(partner_services.partner_plate_key_retire(partner=partner, actor=staff, force=True)) == 1
    assert decide(scene, scene.plate_token) == ("deny", "unknown_credential")


def test_a_key_never_handed_over_stops_with_the_rotation(scene, staff):
    partner = scene.caller.partner
    new = rotate(partner, actor=staff)

    assert car_tokens(scene.vehicle) == {(new.version, token_under(new, scene.vehicle.plate))}
    assert decide(scene, scene.plate_token) == ("deny", "unknown_credential")
    # no retirement recorded for a key nobody held
    assert [reason for _, reason, _ in credential_events(partner)][-1] == "rotated"


def test_an_emergency_rotation_retires_the_handed_over_key_at_once(scene, staff):
    partner = scene.caller.partner
    old = PartnerCredentials.objects.current().get(partner=partner)
    partner_services.partner_credentials_export(partner=partner, actor=staff)

    issued = partner_services.partner_credentials_rotate(partner=partner, emergency=True, actor=staff)

    # before the after-commit task: the old key's tokens went with the rotation itself
    assert not VehiclePlateToken.objects.filter(partner=partner, key_version=old.version).exists()
    assert decide(scene, scene.plate_token) == ("deny", "unknown_credential")
    assert [reason for _, reason, _ in credential_events(partner)][-2:] == ["rotated_emergency", "retired"]
    factories.scope_change_committed(partner.pk)
    assert decide(scene, token_under(issued.credentials, scene.vehicle.plate)) == ("allow", "granted")


def test_rotating_again_during_an_overlap_retires_the_oldest_key(scene, staff):
    partner = scene.caller.partner
    first = PartnerCredentials.objects.current().get(partner=partner)
    partner_services.partner_credentials_export(partner=partner, actor=staff)
    second = rotate(partner, actor=staff)
    partner_services.partner_credentials_export(partner=partner, actor=staff)

    third = rotate(partner, actor=staff)

    assert {version for version, _ in car_tokens(scene.vehicle)} == {second.version, third.version}
    assert decide(scene, token_under(first, scene.vehicle.plate)) == ("deny", "unknown_credential")
    assert decide(scene, token_under(second, scene.vehicle.plate)) == ("allow", "granted")
    assert (first.version, "retired", user_ref(staff)) in credential_events(partner)


def test_the_overlap_ends_on_its_own(scene, staff, settings):
    partner = scene.caller.partner
    old = PartnerCredentials.objects.current().get(partner=partner)
    partner_services.partner_credentials_export(partner=partner, actor=staff)
    rotate(partner, actor=staff)
    overlap = datetime.timedelta(seconds=settings.PLATE_TOKEN_KEY_OVERLAP_S)

    assert partner_services.plate_keys_retire_expired(at=timezone.now() + overlap - datetime.timedelta(minutes=1)) == 0
    assert decide(scene, scene.plate_token) == ("allow", "granted")
    assert partner_services.plate_keys_retire_expired(at=timezone.now() + overlap + datetime.timedelta(seconds=1)) == 1

    assert decide(scene, scene.plate_token) == ("deny", "unknown_credential")
    assert credential_events(partner)[-1] == (old.version, "retired_overlap_ended", "")


def test_a_guest_pass_lets_its_car_in_under_either_key_during_the_overlap(scene, staff):
    partner = scene.caller.partner
    old = PartnerCredentials.objects.current().get(partner=partner)
    guest_pass = guest_pass_create(resident=scene.resident, device=scene.device, plate="В777ОР77")
    partner_services.partner_credentials_export(partner=partner, actor=staff)
    new = rotate(partner, actor=staff)
    old_token, new_token = token_under(old, "B777OP77"), token_under(new, "B777OP77")

    stored = GuestPass.objects.get(pk=guest_pass.pk)
    assert (stored.plate_token, stored.previous_plate_token) == (new_token, old_token)
    assert decide(scene, old_token) == ("allow", "guest_pass")
    assert decide(scene, new_token) == ("allow", "guest_pass")
    created_now = guest_pass_create(resident=scene.resident, device=scene.device, plate="Е111ЕЕ77")
    assert (created_now.plate_token, created_now.previous_plate_token) == (
        token_under(new, "E111EE77"), token_under(old, "E111EE77"))

    switch_and_retire(partner, actor=staff)

    stored = GuestPass.objects.get(pk=guest_pass.pk)
    assert (stored.plate_token, stored.previous_plate_token) == (new_token, None)
    assert decide(scene, old_token) == ("deny", "unknown_credential")
    assert decide(scene, new_token) == ("allow", "guest_pass")
