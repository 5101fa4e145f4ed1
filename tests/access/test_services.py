"""The access and partners services: what they check, what they record, what they derive."""

import datetime

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from django.utils import timezone

from access.models import AccessGrant, Building, Device, Resident, Vehicle, VehiclePlateToken
from access.plates import plate_token
from access.policy import Facts
from access.selectors.staff import company_ids_for_user as staff_company_ids
from access.services.companies import staff_membership_create
from access.services.grants import grant_create, grant_resume, grant_suspend
from access.services.residencies import residency_create, residency_end
from access.services.residents import resident_update
from access.services.vehicles import vehicle_create, vehicle_delete, vehicle_update
from audit.models import AuditEvent
from core.security import roles
from core.security.tenancy import company_ids_for_user
from partners import selectors as partner_selectors
from partners import services as partner_services
from partners.models import PartnerContract, PartnerCredentials
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate():
    """A company with one building covered by partner A (plates allowed) and one covered by B only
    for doors; partner C has no contract."""
    company = factories.company()
    covered = factories.building(company_=company)
    doors_only = factories.building(company_=company)
    a, b, c = factories.partner(), factories.partner(), factories.partner()
    factories.contract(partner_=a, company_=company, buildings=[covered])
    factories.contract(partner_=b, company_=company, buildings=[covered, doors_only], allows_plate=False)
    return {"company": company, "covered": covered, "doors_only": doors_only, "a": a, "b": b, "c": c}


def key_of(partner):
    return PartnerCredentials.objects.current().get(partner=partner).plate_token_key_bytes()


# --- vehicles and plate tokens ---------------------------------------------------------------


def test_vehicle_gets_one_token_per_partner_with_a_plate_contract(estate):
    resident = factories.resident(unit_=factories.unit(building_=estate["covered"]))
    vehicle = vehicle_create(resident=resident, plate="а 123 вс 77", label="Лада")
    assert Vehicle.objects.get(pk=vehicle.pk).plate == "A123BC77"
    tokens = {t.partner_id: t.token for t in vehicle.plate_tokens.all()}
    assert tokens == {estate["a"].pk: plate_token(key=key_of(estate["a"]), plate="A123BC77")}
    # the camera's Latin reading finds the car
    camera_token = plate_token(key=key_of(estate["a"]), plate="A123BC77")
    assert Facts().plate_owner(partner_id=estate["a"].pk, token=camera_token) == (vehicle.resident_id, False)
    assert Facts().plate_owner(partner_id=estate["b"].pk, token=camera_token) is None


def test_resident_outside_covered_buildings_gets_no_token(estate):
    resident = factories.resident(unit_=factories.unit(building_=estate["doors_only"]))
    vehicle = vehicle_create(resident=resident, plate="А123ВС77")
    assert not vehicle.plate_tokens.exists()
    # moving into a covered building (a new residency) adds the token
    factories.residency(resident_=resident, unit_=factories.unit(building_=estate["covered"]))
    assert list(vehicle.plate_tokens.values_list("partner_id", flat=True)) == [estate["a"].pk]


def test_invalid_plate_is_refused_and_nothing_is_stored(estate):
    resident = factories.resident(unit_=factories.unit(building_=estate["covered"]))
    with pytest.raises(ValidationError) as caught:
        vehicle_create(resident=resident, plate="Д123ВС77")
    assert caught.value.error_dict["plate"][0].code == "invalid_characters"
    assert not Vehicle.objects.exists()
    assert not VehiclePlateToken.objects.exists()


def test_the_same_plate_twice_for_one_partner_is_refused(estate):
    first = factories.resident(unit_=factories.unit(building_=estate["covered"]))
    second = factories.resident(unit_=factories.unit(building_=estate["covered"]))
    vehicle_create(resident=first, plate="А123ВС77")
    with pytest.raises(ValidationError) as caught:
        vehicle_create(resident=second, plate="a123bc77")
    assert caught.value.error_dict["plate"][0].code == "plate_taken"
    assert Vehicle.objects.count() == 1


def test_vehicle_update_and_delete_keep_tokens_in_step(estate):
    resident = factories.resident(unit_=factories.unit(building_=estate["covered"]))
    vehicle = vehicle_create(resident=resident, plate="А123ВС77")
    vehicle_update(vehicle=vehicle, plate="В456ОР799")
    assert vehicle.plate_tokens.get().token == plate_token(key=key_of(estate["a"]), plate="B456OP799")
    vehicle_delete(vehicle=vehicle)
    assert not VehiclePlateToken.objects.exists()
    actions = list(AuditEvent.objects.filter(object_type="vehicle").values_list("action", flat=True))
    assert actions == ["resident.vehicle_create", "resident.vehicle_update", "resident.vehicle_delete"]


def test_rotating_the_plate_key_recomputes_tokens(estate):
    resident = factories.resident(unit_=factories.unit(building_=estate["covered"]))
    vehicle = vehicle_create(resident=resident, plate="А123ВС77")
    before = vehicle.plate_tokens.get().token
    partner_services.partner_credentials_rotate(partner=estate["a"])
    factories.scope_change_committed(estate["a"].pk)
    after = vehicle.plate_tokens.get().token
    assert after != before
    assert after == plate_token(key=key_of(estate["a"]), plate="A123BC77")


def test_contract_changes_add_and_remove_tokens(estate):
    resident = factories.resident(unit_=factories.unit(building_=estate["covered"]))
    vehicle = vehicle_create(resident=resident, plate="А123ВС77")
    contract_c = factories.contract(partner_=estate["c"], company_=estate["company"], buildings=[estate["covered"]])
    assert set(vehicle.plate_tokens.values_list("partner_id", flat=True)) == {estate["a"].pk, estate["c"].pk}
    partner_services.partner_contract_end(contract=contract_c)
    factories.scope_change_committed(estate["c"].pk)
    assert set(vehicle.plate_tokens.values_list("partner_id", flat=True)) == {estate["a"].pk}


# --- residents, residencies, grants ----------------------------------------------------------


def test_resident_user_carries_no_personal_data():
    resident = factories.resident(full_name="Иванов Алексей", email="ivanov@example.ru")
    user = resident.user
    assert (user.first_name, user.last_name, user.email) == ("", "", "")
    assert not user.has_usable_password()
    assert user.username.startswith("r-")


def test_residency_in_another_company_is_refused():
    resident = factories.resident()
    foreign_unit = factories.unit()
    with pytest.raises(ValidationError, match="another management company"):
        residency_create(resident=resident, unit=foreign_unit, kind="owner")


def test_grant_to_another_company_is_refused():
    resident = factories.resident()
    foreign = factories.building()
    with pytest.raises(ValidationError, match="another management company"):
        grant_create(resident=resident, building=foreign)
    assert not AccessGrant.objects.exists()


def test_move_out_ends_the_residency_and_its_grants():
    resident = factories.resident()
    residency = factories.residency(resident_=resident, valid_from=datetime.date(2024, 1, 1))
    through_residency = grant_create(residency=residency, building=residency.unit.building)
    personal = grant_create(resident=resident, building=residency.unit.building)
    residency_end(residency=residency)
    residency.refresh_from_db()
    through_residency.refresh_from_db()
    personal.refresh_from_db()
    assert residency.valid_until == timezone.localdate()
    assert through_residency.valid_until <= timezone.now()
    assert personal.valid_until is None  # a personal grant is not tied to the flat
    residency_end(residency=residency)  # idempotent
    assert AuditEvent.objects.filter(object_type="residency", reason="ended").count() == 1


def test_grant_suspend_and_resume():
    grant = factories.grant()
    grant_suspend(grant=grant)
    grant.refresh_from_db()
    assert grant.suspended
    grant_resume(grant=grant)
    grant.refresh_from_db()
    assert not grant.suspended
    assert list(AuditEvent.objects.filter(object_type="grant").values_list("reason", flat=True)) == [
        "created", "suspended", "resumed",
    ]


def test_audit_events_carry_no_personal_data():
    staff = factories.staff_user()
    resident = factories.resident(full_name="Иванов Алексей", phone="+79161234567", email="ivanov@example.ru")
    resident_update(resident=resident, phone="+79160000000", actor=staff)
    factories.vehicle(resident_=resident, plate="А123ВС77")
    for event in AuditEvent.objects.all():
        text = " ".join(str(v) for v in event.__dict__.values())
        for secret in ("Иванов", "9161234567", "9160000000", "ivanov", "A123BC77", "А123ВС77"):
            assert secret not in text
    update = AuditEvent.objects.get(object_type="resident", reason="updated")
    assert update.actor_kind == "staff"
    assert update.object_ref.startswith("resident:")
    assert update.object_ref != f"resident:{resident.pk}"


# --- tenancy ---------------------------------------------------------------------------------


def test_company_ids_for_user_reads_staff_memberships():
    mine, theirs = factories.company(), factories.company()
    manager = factories.staff_user(company_=mine, role=roles.PROPERTY_MANAGER)
    assert company_ids_for_user(manager) == {mine.pk}
    assert staff_company_ids(manager) == {mine.pk}
    staff_membership_create(user=manager, company=theirs)
    assert company_ids_for_user(manager) == {mine.pk, theirs.pk}
    assert company_ids_for_user(factories.staff_user()) == set()
    assert company_ids_for_user(factories.staff_user(superuser=True)) is None
    manager.is_active = False
    assert staff_company_ids(manager) == set()


def test_only_staff_can_belong_to_a_company():
    resident = factories.resident()
    with pytest.raises(ValidationError, match="Only staff"):
        staff_membership_create(user=resident.user, company=resident.company)


def admin_rows(model, user):
    """The rows the admin of `model` shows `user` (its changelist, forms and actions start from these)."""
    request = RequestFactory().get("/admin/")
    request.user = user
    return admin.site._registry[model].get_queryset(request)


def test_admin_rows_are_scoped_to_the_callers_company():
    mine, theirs = factories.company(), factories.company()
    manager = factories.staff_user(company_=mine)
    my_building, their_building = factories.building(company_=mine), factories.building(company_=theirs)
    my_resident = factories.resident(unit_=factories.unit(building_=my_building))
    their_resident = factories.resident(unit_=factories.unit(building_=their_building))
    my_device, their_device = factories.device(building_=my_building), factories.device(building_=their_building)
    my_grant = factories.grant(resident_=my_resident, building_=my_building)
    factories.grant(resident_=their_resident, building_=their_building)
    device_grant = factories.grant(resident_=my_resident, device=my_device)
    factories.contract(company_=theirs, buildings=[their_building])
    mine_contract = factories.contract(company_=mine, buildings=[my_building])

    assert list(admin_rows(Building, manager)) == [my_building]
    assert list(admin_rows(Resident, manager)) == [my_resident]
    assert list(admin_rows(Device, manager)) == [my_device]
    assert set(admin_rows(AccessGrant, manager)) == {my_grant, device_grant}
    assert list(admin_rows(PartnerContract, manager)) == [mine_contract]
    assert their_device not in admin_rows(Device, manager)
    root = factories.staff_user(superuser=True)
    assert admin_rows(Resident, root).count() == 2
    assert Resident.objects.count() == 2


# --- partner credentials ---------------------------------------------------------------------


def test_credentials_rotation_keeps_history_and_returns_secrets_once():
    partner = factories.partner(with_credentials=False)
    first = partner_services.partner_credentials_rotate(
        partner=partner, client_id="smarthome", client_secret="sandbox-secret", allowed_cidrs=["10.0.0.0/8"]
    )
    assert first.credentials.version == 1
    assert first.secrets["client_secret"] == "sandbox-secret"
    assert first.secrets["webhook_secret"].startswith("whsec_")
    assert set(first.secrets) == {"client_secret", "plate_token_key", "webhook_secret", "subject_key",
                                  "outbound_webhook_secret"}
    assert "sandbox-secret" not in repr(first)

    second = partner_services.partner_credentials_rotate(partner=partner)
    old = PartnerCredentials.objects.get(pk=first.credentials.pk)
    new = second.credentials
    assert old.revoked_at is not None
    assert new.version == 2
    assert new.revoked_at is None
    assert partner_selectors.current_credentials(partner=partner) == new
    assert new.client_id == "smarthome"
    assert new.allowed_cidrs == ["10.0.0.0/8"]
    assert new.client_secret != "sandbox-secret"
    assert new.plate_token_key != old.plate_token_key
    assert new.webhook_secret != old.webhook_secret
    assert new.subject_key == old.subject_key  # pairwise subject ids stay stable
    assert "subject_key" not in second.secrets
    third = partner_services.partner_credentials_rotate(partner=partner, rotate_subject_key=True)
    assert third.credentials.subject_key != new.subject_key
    assert PartnerCredentials.objects.filter(partner=partner).count() == 3
    assert len(new.plate_token_key_bytes()) == 32
    assert len(new.plate_token_key_fingerprint) == 16
    assert list(AuditEvent.objects.filter(object_type="partner_credentials").values_list("reason", flat=True)) == [
        "rotated", "rotated", "rotated",
    ]


def test_credentials_with_certificate_and_public_key_show_fingerprints(tmp_path):
    from partners.devcerts import fingerprint_sha256, generate_dev_pki

    files = generate_dev_pki(tmp_path)
    cert = files["partner-client.pem"].read_text()
    partner = factories.partner(with_credentials=False)
    issued = partner_services.partner_credentials_rotate(
        partner=partner, client_id="smarthome", client_cert_pem=cert,
        partner_public_key_pem=files["partner-jwe.pub.pem"].read_text(),
    )
    assert issued.credentials.client_cert_fingerprint == fingerprint_sha256(cert.encode())
    assert len(issued.credentials.partner_public_key_fingerprint) == 64


@pytest.mark.parametrize(
    ("field", "value"),
    [("client_cert_pem", "not a certificate"), ("partner_public_key_pem", "nope"), ("allowed_cidrs", ["x"])],
)
def test_credentials_rotation_validates_its_inputs(field, value):
    partner = factories.partner()
    before = PartnerCredentials.objects.get(partner=partner)
    with pytest.raises(ValidationError) as caught:
        partner_services.partner_credentials_rotate(partner=partner, **{field: value})
    assert field in caught.value.message_dict
    assert list(PartnerCredentials.objects.filter(partner=partner)) == [before]
    assert PartnerCredentials.objects.get(pk=before.pk).revoked_at is None


def test_contract_buildings_must_belong_to_the_company():
    company = factories.company()
    with pytest.raises(ValidationError, match="contract's management company"):
        factories.contract(company_=company, buildings=[factories.building()])
