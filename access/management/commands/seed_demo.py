"""Seed a realistic demo: one management company, two buildings, their doors, barriers and
cameras at the sandbox partner, ~20 residents with flats, grants and cars, the sandbox partner's
contract and credentials, and three staff users with TOTP devices whose secrets are printed.

Idempotent: if the demo company exists, nothing is created again (staff passwords are not
recoverable; `--reset` removes the demo and seeds it afresh with new passwords and secrets).
Refuses to run with DEBUG off unless `--allow-production` (the printed passwords are demo ones).
"""

import base64
import datetime
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from oauth2_provider.models import get_application_model

from access.management import demo_consent
from access.models import AccessGrant, Building, Device, ManagementCompany, Residency, Resident, StaffMembership, Unit
from access.services.companies import building_create, company_create, staff_membership_create, unit_create
from access.services.devices import device_create
from access.services.grants import grant_create
from access.services.residencies import residency_create
from access.services.residents import resident_create
from access.services.vehicles import vehicle_create
from consent import services as consent_services
from consent.models import Consent, ConsentText, DeletionReceipt, FaceEnrolment
from core.auth import otp
from core.models import EncryptedTOTPDevice
from core.security import roles
from partners import services as partners
from partners.devcerts import generate_dev_pki
from partners.models import OutboxMessage, Partner, PartnerContract, PartnerCredentials

COMPANY = "УК Северный квартал"
OPERATOR_ADDRESS = "127282, г. Москва, ул. Полярная, д. 31, корп. 1, пом. 1"
SANDBOX_SLUG = "sandbox"
BUILDINGS = (
    ("Дом 1, корпус 1", "г. Москва, ул. Полярная, д. 31, корп. 1"),
    ("Дом 1, корпус 2", "г. Москва, ул. Полярная, д. 31, корп. 2"),
)
# (full name, e-mail user, plate as a resident types it or "")
RESIDENTS = (
    ("Иванов Алексей Сергеевич", "a.ivanov", "А123ВС 77"),
    ("Смирнова Екатерина Андреевна", "ekaterina.smirnova", "В456ОР 799"),
    ("Кузнецов Дмитрий Игоревич", "d.kuznetsov", "Е789КХ 50"),
    ("Попова Анна Владимировна", "anna.popova", ""),
    ("Васильев Михаил Петрович", "m.vasiliev", "К321МН 177"),
    ("Петрова Ольга Николаевна", "olga.petrova", "М654ТУ 97"),
    ("Соколов Артём Александрович", "artem.sokolov", "Н987АЕ 77"),
    ("Михайлова Наталья Юрьевна", "n.mikhailova", ""),
    ("Новиков Сергей Викторович", "s.novikov", "О147РС 750"),
    ("Фёдорова Мария Дмитриевна", "maria.fedorova", "Р258СТ 77"),
    ("Морозов Иван Олегович", "i.morozov", "С369ТХ 190"),
    ("Волкова Татьяна Сергеевна", "t.volkova", ""),
    ("Алексеев Павел Андреевич", "p.alekseev", "Т741УВ 99"),
    ("Лебедева Юлия Александровна", "yulia.lebedeva", "У852ХА 777"),
    ("Семёнов Константин Ильич", "k.semenov", "Х963ВЕ 50"),
    ("Егорова Ирина Викторовна", "i.egorova", ""),
    ("Павлов Николай Фёдорович", "n.pavlov", "АВ 123 77"),
    ("Козлова Светлана Игоревна", "s.kozlova", "В159ЕК 197"),
    ("Степанов Роман Евгеньевич", "r.stepanov", "1234 КМ 77"),
    ("Николаева Дарья Романовна", "d.nikolaeva", "Е753МН 199"),
)
STAFF = (
    ("manager", roles.PROPERTY_MANAGER),
    ("compliance", roles.COMPLIANCE_OFFICER),
    ("security", roles.SECURITY_ADMIN),
)


MOBILE_APP_CLIENT_ID = "mobile-app"
MOBILE_APP_REDIRECT_URI = "ru.smarthome.app:/oauth2redirect"


class Command(BaseCommand):
    help = "Create demo data for `make run` (idempotent; --reset starts over)."

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true", help="delete the demo first and seed it afresh")
        parser.add_argument("--allow-production", action="store_true", help="run even with DEBUG off")
        parser.add_argument("--quiet-secrets", action="store_true", help="do not print passwords and TOTP secrets")

    def handle(self, *args, reset, allow_production, quiet_secrets, **options):
        if not settings.DEBUG and not allow_production and settings.PRODUCTION:
            raise CommandError("seed_demo creates users with printed passwords; refusing in production")
        self.quiet = quiet_secrets
        if reset:
            self._reset()
        if ManagementCompany.objects.filter(name=COMPANY).exists():
            self.stdout.write(f"seed_demo: '{COMPANY}' already exists; nothing to do (use --reset to start over)")
            self._consent_texts_if_missing(ManagementCompany.objects.get(name=COMPANY))
            self._summary(ManagementCompany.objects.get(name=COMPANY), staff_secrets=None)
            return
        with transaction.atomic():
            company, staff_secrets = self._seed()
        self._summary(company, staff_secrets=staff_secrets)

    # --- seeding ---------------------------------------------------------------------------

    def _seed(self):
        company = company_create(name=COMPANY)
        partner = self._sandbox_partner()
        buildings = [building_create(company=company, name=n, address=a) for n, a in BUILDINGS]
        contract = partners.partner_contract_create(
            partner=partner, company=company, buildings=buildings,
            allows_open=True, allows_video=True, allows_face=True, allows_plate=True,
            purpose="Открытие дверей и шлагбаумов жителям, видеодомофон, распознавание лиц и номеров",
            retention_days=30, agreement_ref="ДОГ-2025/017 от 01.03.2025",
            valid_from=timezone.now() - datetime.timedelta(days=1),
        )
        self._consent_texts(company, partner, contract)
        counter = {"door": 0, "barrier": 0, "camera": 0}

        def device(building, kind, label, name):
            counter[label] += 1
            return device_create(
                building=building, kind=kind, name=name, partner=partner,
                partner_device_ref=f"sbx-{label}-{counter[label]}",
            )

        for building in buildings:
            device(building, Device.Kind.INTERCOM_DOOR, "door", "Подъезд 1")
            device(building, Device.Kind.INTERCOM_DOOR, "door", "Подъезд 2")
            device(building, Device.Kind.BARRIER, "barrier", "Шлагбаум паркинга")
            device(building, Device.Kind.CAMERA, "camera", "Камера двора")
        for index, (full_name, mail, plate) in enumerate(RESIDENTS):
            building = buildings[index % 2]
            unit = unit_create(building=building, number=str(10 + index * 3))
            resident = resident_create(
                company=company, full_name=full_name, phone=_phone(index), email=f"{mail}@example.ru",
                username=f"resident{index + 1}",
            )
            residency = residency_create(
                resident=resident, unit=unit, kind="tenant" if index % 4 == 3 else "owner",
                valid_from=datetime.date(2023, 1, 1) + datetime.timedelta(days=index * 17),
            )
            grant_create(residency=residency, building=building)
            if plate:
                vehicle_create(resident=resident, plate=plate, label="Автомобиль")
        staff_secrets = [self._staff_user(username, role, company) for username, role in STAFF]
        staff_secrets.append(self._mobile_app_and_resident_login())
        return company, staff_secrets

    def _consent_texts(self, company, partner, contract) -> None:
        """The face consent text the app shows for the sandbox partner, in Russian and English."""
        bodies = demo_consent.texts(
            operator=f"ООО «{company.name}»", operator_address=OPERATOR_ADDRESS, partner=f"«{partner.name}»",
            agreement=contract.agreement_ref, retention_days=contract.retention_days,
        )
        for language, body in bodies.items():
            consent_services.consent_text_publish(
                version=demo_consent.VERSION, body=body, language=language, partner=partner, company_id=company.pk,
            )

    def _consent_texts_if_missing(self, company) -> None:
        """A demo seeded before consent texts existed gets them."""
        contract = PartnerContract.objects.filter(company=company, partner__slug=SANDBOX_SLUG).first()
        if contract is not None and not ConsentText.objects.filter(partner=contract.partner_id).exists():
            with transaction.atomic():
                self._consent_texts(company, contract.partner, contract)

    def _mobile_app_and_resident_login(self) -> dict:
        """The public mobile-app OAuth2 client and a password for `resident1`, for the walkthrough in docs/api.md."""
        application_model = get_application_model()
        application_model.objects.get_or_create(
            client_id=MOBILE_APP_CLIENT_ID,
            defaults={
                "name": "smarthome mobile app",
                "client_type": application_model.CLIENT_PUBLIC,
                "authorization_grant_type": application_model.GRANT_AUTHORIZATION_CODE,
                "redirect_uris": MOBILE_APP_REDIRECT_URI,
                "algorithm": "",
            },
        )
        user = get_user_model().objects.get(username="resident1")
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.save(update_fields=["password"])
        return {"username": "resident1", "role": "resident, mobile app login", "password": password}

    def _sandbox_partner(self) -> Partner:
        port = int(os.environ.get("SANDBOX_PORT", "8443"))  # as scripts/run_dev.py starts it
        base = f"https://127.0.0.1:{port}"
        partner = partners.partner_create(
            name="Sandbox partner", slug=SANDBOX_SLUG, api_base_url=base, audit_log_url=f"{base}/v1/audit"
        )
        certs = self._certs()
        partners.partner_credentials_rotate(
            partner=partner,
            client_id="smarthome",
            client_secret="sandbox-secret",  # noqa: S106 - the sandbox's documented default
            client_cert_pem=_read(certs.get("partner-client.pem")),
            partner_public_key_pem=_read(certs.get("partner-jwe.pub.pem")),
            allowed_cidrs=["127.0.0.0/8", "::1/128"],
        )
        return partner

    def _certs(self) -> dict[str, Path]:
        certs_dir = Path(settings.VAR_DIR) / "certs"
        wanted = ("partner-client.pem", "partner-jwe.pub.pem")
        if all((certs_dir / name).exists() for name in wanted):
            return {name: certs_dir / name for name in wanted}
        return generate_dev_pki(certs_dir)

    def _staff_user(self, username: str, role: str, company: ManagementCompany) -> dict:
        password = secrets.token_urlsafe(12)
        user = get_user_model().objects.create_user(username=username, password=password, is_staff=True)
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        staff_membership_create(user=user, company=company)
        device = otp.totp_device_create(user=user, actor=None)  # key encrypted at rest
        codes = otp.backup_codes_issue(user=user, actor=None, count=5)  # stored as digests, printed once
        return {
            "username": username,
            "role": role,
            "password": password,
            "totp_secret": base64.b32encode(bytes.fromhex(device.key)).decode().rstrip("="),
            "otpauth": device.config_url,
            "backup_codes": codes,
        }

    # --- reset and summary -----------------------------------------------------------------

    @transaction.atomic
    def _reset(self):
        company = ManagementCompany.objects.filter(name=COMPANY).first()
        usernames = [username for username, _ in STAFF]
        User = get_user_model()
        if company is not None:
            residents = Resident.objects.filter(company=company)
            user_ids = list(residents.values_list("user_id", flat=True))
            # the demo's consents go with it (in a real deployment they outlive the resident as evidence)
            FaceEnrolment.objects.filter(consent__company_id=company.pk).delete()
            Consent.objects.filter(company_id=company.pk).delete()
            ConsentText.objects.filter(company_id=company.pk).delete()
            AccessGrant.objects.filter(residency__resident__company=company).delete()
            AccessGrant.objects.filter(resident__company=company).delete()
            Residency.objects.filter(resident__company=company).delete()
            residents.delete()  # vehicles and plate tokens cascade
            User.objects.filter(pk__in=user_ids).delete()
            PartnerContract.objects.filter(company=company).delete()
            Device.objects.filter(building__company=company).delete()
            Unit.objects.filter(building__company=company).delete()
            Building.objects.filter(company=company).delete()
            StaffMembership.objects.filter(company=company).delete()
            company.delete()
        sandbox = Partner.objects.filter(slug=SANDBOX_SLUG).first()
        if sandbox is not None and not sandbox.contracts.exists() and not sandbox.devices.exists():
            OutboxMessage.objects.filter(partner=sandbox).delete()  # its allowlist patches and events
            DeletionReceipt.objects.filter(partner=sandbox).delete()
            ConsentText.objects.filter(partner=sandbox).delete()
            PartnerCredentials.objects.filter(partner=sandbox).delete()
            sandbox.delete()
        EncryptedTOTPDevice.objects.filter(user__username__in=usernames).delete()
        StaticDevice.objects.filter(user__username__in=usernames).delete()
        User.objects.filter(username__in=usernames).delete()
        self.stdout.write("seed_demo: previous demo removed")

    def _summary(self, company, *, staff_secrets):
        buildings = company.buildings.count()
        devices = Device.objects.filter(building__company=company).count()
        residents = Resident.objects.filter(company=company).count()
        vehicles = sum(r.vehicles.count() for r in Resident.objects.filter(company=company))
        self.stdout.write(
            f"seed_demo: {company.name}: {buildings} buildings, {devices} devices, {residents} residents, "
            f"{vehicles} vehicles; sandbox partner with an active contract (open, video, face, plate)"
        )
        if not staff_secrets:
            return
        self.stdout.write("Admin logins (password + TOTP; shown once, keep them):")
        for entry in staff_secrets:
            if "totp_secret" not in entry:
                self.stdout.write(
                    f"Resident login (OAuth2 client '{MOBILE_APP_CLIENT_ID}', PKCE S256, redirect "
                    f"{MOBILE_APP_REDIRECT_URI}):\n  {entry['username']:<11} password: "
                    f"{'(hidden)' if self.quiet else entry['password']}"
                )
                continue
            if self.quiet:
                self.stdout.write(f"  {entry['username']:<11} ({entry['role']})")
                continue
            self.stdout.write(
                f"  {entry['username']:<11} ({entry['role']})  password: {entry['password']}\n"
                f"              TOTP secret (base32): {entry['totp_secret']}\n"
                f"              otpauth URI: {entry['otpauth']}\n"
                f"              backup codes: {' '.join(entry['backup_codes'])}"
            )


def _phone(index: int) -> str:
    """A plausible Russian mobile number, different for every demo resident."""
    return (
        f"+7 9{16 + index % 3} {(123 + index * 41) % 900 + 100:03d}-"
        f"{(index * 37 + 11) % 90 + 10:02d}-{(index * 53 + 29) % 90 + 10:02d}"
    )


def _read(path: Path | None) -> str | None:
    return Path(path).read_text() if path else None
