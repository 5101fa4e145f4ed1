"""Plain functions that create valid domain objects through the services, for every test.

Each takes keyword overrides; related objects are created when not given. Names, phones and
plates are unique per call so tests can create many.
"""

import itertools
import uuid

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from access.models import AccessGrant, Building, Device, ManagementCompany, Resident, Unit, Vehicle
from access.services.companies import building_create, company_create, staff_membership_create, unit_create
from access.services.devices import device_create
from access.services.grants import grant_create
from access.services.plate_tokens import partner_scope_refresh
from access.services.residencies import residency_create
from access.services.residents import resident_create
from access.services.vehicles import vehicle_create
from partners import services as partner_services
from partners.models import Partner, PartnerContract

_seq = itertools.count(1)
PLATE_LETTERS = "АВЕКМНОРСТУХ"


def _n() -> int:
    return next(_seq)


def company(*, name: str | None = None) -> ManagementCompany:
    return company_create(name=name or f"УК Тест {_n()}")


def building(*, company_: ManagementCompany | None = None, name: str | None = None, **kwargs) -> Building:
    return building_create(
        company=company_ or company(), name=name or f"Дом {_n()}",
        address=kwargs.pop("address", "г. Москва, ул. Тестовая, д. 1"), **kwargs,
    )


def unit(*, building_: Building | None = None, number: str | None = None) -> Unit:
    return unit_create(building=building_ or building(), number=number or str(_n()))


def staff_user(
    *,
    username: str | None = None,
    company_: ManagementCompany | None = None,
    role: str | None = None,
    password: str = "correct horse battery staple",  # noqa: S107 - test users
    superuser: bool = False,
):
    """A staff user (optionally a member of `company_` and in the group `role`)."""
    User = get_user_model()
    user = User.objects.create_user(
        username=username or f"staff{_n()}", password=password, is_staff=True, is_superuser=superuser
    )
    if company_ is not None:
        staff_membership_create(user=user, company=company_)
    if role is not None:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def resident(*, company_: ManagementCompany | None = None, unit_: Unit | None = None, **kwargs) -> Resident:
    """A resident; with `unit_`, also an owner residency there (company taken from the unit)."""
    if company_ is None:
        company_ = unit_.building.company if unit_ is not None else company()
    n = _n()
    person = resident_create(
        company=company_,
        full_name=kwargs.pop("full_name", f"Тестов Тест Тестович {n}"),
        phone=kwargs.pop("phone", f"+7916{n:07d}"),
        email=kwargs.pop("email", f"resident{n}@example.ru"),
        **kwargs,
    )
    if unit_ is not None:
        residency(resident_=person, unit_=unit_)
    return person


def residency(*, resident_: Resident | None = None, unit_: Unit | None = None, kind: str = "owner", **kwargs):
    if unit_ is None:
        unit_ = unit(building_=building(company_=resident_.company) if resident_ else None)
    if resident_ is None:
        resident_ = resident(company_=unit_.building.company)
    return residency_create(resident=resident_, unit=unit_, kind=kind, **kwargs)


def partner(*, name: str | None = None, with_credentials: bool = True, **kwargs) -> Partner:
    n = _n()
    org = partner_services.partner_create(
        name=name or f"Partner {n}", slug=kwargs.pop("slug", f"partner-{n}"),
        api_base_url=kwargs.pop("api_base_url", "https://partner.example.invalid"), **kwargs,
    )
    if with_credentials:
        partner_services.partner_credentials_rotate(partner=org, client_id="smarthome", allowed_cidrs=["127.0.0.0/8"])
        scope_change_committed(org.pk)
    return org


def scope_change_committed(partner_id: int) -> None:
    """What runs once a change to a partner's contracts or credentials commits (the on-commit task
    access.tasks.partner_scope_refresh: plate tokens, then allowlists). A test's rolled-back
    transaction never commits, so there it runs here; in a transactional test it ran already."""
    if transaction.get_connection().in_atomic_block:
        partner_scope_refresh(partner_id=partner_id)


def contract(*, partner_: Partner | None = None, company_: ManagementCompany | None = None, buildings=None,
             **kwargs) -> PartnerContract:
    """An active contract allowing every operation, over `buildings` (default: all of the company's)."""
    company_ = company_ or (buildings[0].company if buildings else company())
    if buildings is None:
        buildings = list(company_.buildings.all())
    defaults = {
        "allows_open": True, "allows_video": True, "allows_face": True, "allows_plate": True,
        "purpose": "Доступ жителей в подъезды и на парковку", "retention_days": 30,
        "agreement_ref": f"ДОГ-{_n()}",
    }
    defaults.update(kwargs)
    created = partner_services.partner_contract_create(
        partner=partner_ or partner(), company=company_, buildings=buildings, **defaults
    )
    scope_change_committed(created.partner_id)
    return created


def device(*, building_: Building | None = None, partner_: Partner | None = None, kind: str = "intercom_door",
           **kwargs) -> Device:
    n = _n()
    return device_create(
        building=building_ or building(), partner=partner_ or partner(), kind=kind,
        name=kwargs.pop("name", f"Door {n}"), partner_device_ref=kwargs.pop("partner_device_ref", f"dev-{n}"),
    )


def grant(*, resident_: Resident | None = None, building_: Building | None = None, **kwargs) -> AccessGrant:
    if resident_ is None and "residency" not in kwargs:
        resident_ = resident(company_=building_.company if building_ else None)
    if building_ is None and "device" not in kwargs:
        holder = resident_ or kwargs["residency"].resident
        building_ = building(company_=holder.company)
    return grant_create(resident=resident_, building=building_, **kwargs)


def vehicle(*, resident_: Resident | None = None, plate: str | None = None, **kwargs) -> Vehicle:
    return vehicle_create(
        resident=resident_ or resident(), plate=plate or unique_plate(), **kwargs
    )


def unique_plate() -> str:
    """A valid private plate in Cyrillic, different on every call."""
    n = _n()
    letters = PLATE_LETTERS[n % 12] + PLATE_LETTERS[(n // 12) % 12] + PLATE_LETTERS[(n // 144) % 12]
    return f"{letters[0]}{(n % 999) + 1:03d}{letters[1:]}{77 + (n // 1728) % 20}"


def face_enrolment(*, resident_: Resident, partner_: Partner, subject_id: str | None = None,
                   status: str = "delivered", building_id: int | None = None):
    """A face consent of `resident_` for `partner_` (through consent_give) and an enrolment of it;
    `subject_id` defaults to a random one. Returns the enrolment (its consent: `.consent`)."""
    from consent.models import FaceEnrolment
    from consent.services import consent_give, consent_text_publish

    text = consent_text_publish(version=f"v{_n()}-{uuid.uuid4().hex[:6]}", body="Согласие на обработку биометрии")
    consent = consent_give(resident_id=resident_.pk, company_id=resident_.company_id, partner=partner_, text=text,
                           building_id=building_id)
    return FaceEnrolment.objects.create(consent=consent, partner=partner_, resident_id=resident_.pk,
                                        subject_id=subject_id or f"subj_{uuid.uuid4().hex}", status=status)
