"""Two management companies with one of everything each, and staff users to look at them.

`world["a"][Model]` is company A's row of that model, `world["b"][Model]` company B's. Staff
users belong to company A. Rows are created through the services, as the admin creates them.
"""

from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice

from access.models import (
    AccessGrant,
    Building,
    Device,
    GuestPass,
    ManagementCompany,
    Residency,
    Resident,
    StaffMembership,
    Unit,
    Vehicle,
)
from access.services.companies import building_create, company_create, staff_membership_create, unit_create
from access.services.devices import device_create
from access.services.grants import grant_create
from access.services.guest_passes import guest_pass_create
from access.services.residencies import residency_create
from access.services.residents import resident_create
from access.services.vehicles import vehicle_create
from core.auth.otp import backup_code_digest
from core.models import EncryptedTOTPDevice
from core.security.roles import COMPLIANCE_OFFICER, PROPERTY_MANAGER, SECURITY_ADMIN
from identity.models import Invitation, ProviderLink
from identity.services.links import provider_link_create
from masterdata.models import SpreadsheetImport
from partners import services as partner_services
from partners.models import Partner, PartnerContract, PartnerCredentials
from tests.consent.world import consent_rows

PASSWORD = "correct horse battery staple 42"
PLATES = {"a": "А123ВС77", "b": "В456ОР199"}
GUEST_PLATES = {"a": "Е777КХ77", "b": "М888ТТ99"}
NAMES = {"a": "Иванов Иван Иванович", "b": "Петрова Мария Сергеевна"}


def make_company_world(key: str) -> dict:
    company = company_create(name=f"УК «{key.upper()}-Сервис»")
    building = building_create(
        company=company, name=f"ЖК {key.upper()}, корпус 1", address=f"Москва, ул. {key.upper()}, 1"
    )
    unit = unit_create(building=building, number="12")
    partner = partner_services.partner_create(
        name=f"Partner {key.upper()}", slug=f"partner-{key}", api_base_url=f"https://partner-{key}.example"
    )
    credentials = partner_services.partner_credentials_rotate(partner=partner, client_id=f"client-{key}").credentials
    contract = partner_services.partner_contract_create(
        partner=partner, company=company, buildings=[building], purpose="Доступ в подъезд и на парковку",
        retention_days=30, agreement_ref=f"AG-{key.upper()}-1", allows_open=True, allows_plate=True,
    )
    device = device_create(
        building=building, kind=Device.Kind.BARRIER, name=f"Шлагбаум {key.upper()}", partner=partner,
        partner_device_ref=f"gate-{key}",
    )
    resident = resident_create(
        company=company, full_name=NAMES[key], phone=f"+7916000000{ord(key) % 10}", email=f"{key}@example.ru"
    )
    residency = residency_create(
        resident=resident, unit=unit, kind=Residency.Kind.OWNER, valid_from=date.today() - timedelta(days=400)
    )
    grant = grant_create(resident=resident, building=building)
    vehicle = vehicle_create(resident=resident, plate=PLATES[key], label="семейная")
    guest_pass = guest_pass_create(resident=resident, device=device, plate=GUEST_PLATES[key], label="сантехник")
    staff = User.objects.create_user(username=f"staff-{key}", password=PASSWORD, is_staff=True)
    membership = staff_membership_create(user=staff, company=company)
    return {
        ManagementCompany: company,
        StaffMembership: membership,
        Building: building,
        Unit: unit,
        Resident: resident,
        Residency: residency,
        Device: device,
        AccessGrant: grant,
        Vehicle: vehicle,
        GuestPass: guest_pass,
        Partner: partner,
        PartnerContract: contract,
        PartnerCredentials: credentials,
        **consent_rows(company=company, building=building, partner=partner, resident=resident),
        **identity_rows(key=key, resident=resident),
        # a manager's spreadsheet import into this company, previewed and not confirmed
        SpreadsheetImport: SpreadsheetImport.objects.create(
            company=company, created_by=staff, shape=SpreadsheetImport.Shape.RESIDENTS, file_format="csv",
            file_name=f"residents-{key}.csv", rows=1,
        ),
    }


def identity_rows(*, key: str, resident) -> dict:
    link = provider_link_create(resident=resident, subject=f"sub-{key}", issuer="https://id.example/realms/residents")
    invitation = Invitation.objects.create(
        resident=resident, purpose=Invitation.Purpose.INVITE, channel=Invitation.Channel.EMAIL,
        expires_at=timezone.now() + timedelta(days=3),
    )
    return {ProviderLink: link, Invitation: invitation}


@pytest.fixture
def world(db):
    return {"a": make_company_world("a"), "b": make_company_world("b")}


def staff_user(username: str, *, company=None, roles=(), all_permissions=False, superuser=False) -> User:
    user = User.objects.create_user(
        username=username, password=PASSWORD, is_staff=True, is_superuser=superuser
    )
    for role in roles:
        user.groups.add(Group.objects.get(name=role))
    if all_permissions:
        user.user_permissions.set(Permission.objects.all())
    if company is not None:
        staff_membership_create(user=user, company=company)
    return user


def totp_device(user) -> EncryptedTOTPDevice:
    """A confirmed TOTP device with a random key (encrypted at rest); two_factor uses "default"."""
    return EncryptedTOTPDevice.objects.create(user=user, name="default", confirmed=True)


def backup_device(user, codes=("alpha234", "bravo567")) -> StaticDevice:
    """The user's backup-code device holding `codes` (stored as their digests, as issued codes are)."""
    device = StaticDevice.objects.create(user=user, name="backup", confirmed=True)
    for code in codes:
        device.token_set.create(token=backup_code_digest(code))
    return device


def login_verified(client, user):
    """Log `user` in as if they had passed password + TOTP (django_otp.login equivalent)."""
    device = user.totp_devices.filter(confirmed=True).first() or totp_device(user)
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


@pytest.fixture
def users(world):
    company_a = world["a"][ManagementCompany]
    return SimpleNamespace(
        manager=staff_user("manager-a", company=company_a, roles=[PROPERTY_MANAGER]),
        compliance=staff_user("compliance-a", company=company_a, roles=[COMPLIANCE_OFFICER]),
        security=staff_user("security", roles=[SECURITY_ADMIN]),
        # Every permission but company A's scope only: isolation is about rows, not permissions.
        scoped=staff_user("scoped-a", company=company_a, all_permissions=True),
        root=staff_user("root", superuser=True),
    )


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Staff users are created by the dozen; a fast hasher keeps the suite quick (tests only)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
