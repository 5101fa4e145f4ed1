"""`manage.py seed_demo`: a usable, idempotent demo whose staff can log in with password + TOTP."""

import base64
import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django_otp.oath import totp

from access.models import AccessGrant, Building, Device, ManagementCompany, Resident, Vehicle, VehiclePlateToken
from access.plates import plate_formats
from core.models import EncryptedTOTPDevice
from core.security import roles
from core.security.tenancy import company_ids_for_user
from partners.models import Partner, PartnerContract, PartnerCredentials

pytestmark = pytest.mark.django_db


def seed(*args) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_seed_demo_creates_the_demo():
    output = seed()
    company = ManagementCompany.objects.get(name="УК Северный квартал")
    assert Building.objects.filter(company=company).count() == 2
    for building in company.buildings.all():
        kinds = sorted(building.devices.values_list("kind", flat=True))
        assert kinds == ["barrier", "camera", "intercom_door", "intercom_door"]
    assert set(Device.objects.values_list("partner_device_ref", flat=True)) >= {"sbx-door-1", "sbx-barrier-2"}
    assert Resident.objects.filter(company=company).count() == 20
    assert AccessGrant.objects.count() == 20
    vehicles = list(Vehicle.objects.all())
    assert len(vehicles) == 16
    assert all(plate_formats(v.plate) for v in vehicles)
    assert {"private", "taxi", "motorcycle"} <= {plate_formats(v.plate)[0] for v in vehicles}

    sandbox = Partner.objects.get(slug="sandbox")
    contract = PartnerContract.objects.active().get(partner=sandbox, company=company)
    assert (contract.allows_open, contract.allows_video, contract.allows_face, contract.allows_plate) == (True,) * 4
    assert contract.buildings.count() == 2
    credentials = PartnerCredentials.objects.current().get(partner=sandbox)
    assert (credentials.client_id, credentials.client_secret) == ("smarthome", "sandbox-secret")
    assert "BEGIN PUBLIC KEY" in credentials.partner_public_key_pem
    assert len(credentials.client_cert_fingerprint) == 64
    assert VehiclePlateToken.objects.filter(partner=sandbox).count() == 16

    assert "manager" in output
    assert "compliance" in output
    assert "otpauth://totp/" in output


@pytest.mark.parametrize(
    ("username", "role"),
    [("manager", roles.PROPERTY_MANAGER), ("compliance", roles.COMPLIANCE_OFFICER), ("security", roles.SECURITY_ADMIN)],
)
def test_printed_credentials_work(username, role):
    output = seed()
    block = output[output.index(f"  {username} "):]
    password = re.search(r"password: (\S+)", block)[1]
    secret = re.search(r"TOTP secret \(base32\): ([A-Z2-7]+)", block)[1]
    user = get_user_model().objects.get(username=username)
    assert user.check_password(password)
    assert user.is_staff
    assert not user.is_superuser
    assert roles.has_role(user, role)
    assert company_ids_for_user(user) == {ManagementCompany.objects.get(name="УК Северный квартал").pk}
    device = EncryptedTOTPDevice.objects.get(user=user, confirmed=True)
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    assert key == device.bin_key
    assert device.verify_token(totp(key))


def test_seed_demo_is_idempotent_and_reset_starts_over():
    first = seed()
    counts = (Resident.objects.count(), Device.objects.count(), Vehicle.objects.count(), Partner.objects.count())
    again = seed()
    assert "already exists" in again
    assert "password:" not in again
    assert (Resident.objects.count(), Device.objects.count(), Vehicle.objects.count(),
            Partner.objects.count()) == counts
    fresh = seed("--reset")
    assert "previous demo removed" in fresh
    assert (Resident.objects.count(), Device.objects.count(), Vehicle.objects.count(),
            Partner.objects.count()) == counts
    old_password = re.search(r"manager .*password: (\S+)", first)[1]
    assert not get_user_model().objects.get(username="manager").check_password(old_password)
    assert EncryptedTOTPDevice.objects.filter(user__username="manager").count() == 1
