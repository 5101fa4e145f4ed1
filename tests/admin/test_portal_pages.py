"""The property manager's pages in Russian: a resident's page, a device's page, guest passes,
consents, the dashboards and the audit export form - each scoped to the manager's company (the
other company's rows are 404 or absent, and a refused write changes nothing)."""

import datetime
import re
import zoneinfo
from html import unescape

import pytest
from django.conf import settings
from django.utils import timezone

from access.models import AccessGrant, Building, Device, GuestPass, Resident, Unit, Vehicle
from access.services.grants import grant_update
from audit.actions import Action, ActorKind, Outcome
from audit.models import AuditEvent
from consent.models import Consent
from consent.services import consent_revoke
from core.security.identifiers import pseudonymous_ref
from identity.models import Invitation
from tests.admin.conftest import GUEST_PLATES, NAMES, PLATES, login_verified

pytestmark = [pytest.mark.django_db, pytest.mark.language("ru")]


def text_of(response) -> str:
    """The page's visible text, tags removed."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture
def manager(client, users):
    return login_verified(client, users.manager)


def portal_now() -> datetime.datetime:
    """Now on the managers' clock: the portal reads the times typed into it in PORTAL_TIME_ZONE."""
    return timezone.localtime(timezone=zoneinfo.ZoneInfo(settings.PORTAL_TIME_ZONE))


def card_url(obj) -> str:
    return f"/admin/access/{obj._meta.model_name}/{obj.pk}/card/"


# --- the resident's page ----------------------------------------------------------------------


def test_a_residents_page_shows_everything_about_them_in_russian(manager, world):
    resident = world["a"][Resident]
    grant = world["a"][AccessGrant]
    grant_update(grant=grant, valid_from=grant.valid_from, valid_until=None, suspended=False,
                 schedule={day: [["07:00", "23:00"]] for day in ("mon", "tue", "wed", "thu", "fri")})
    AuditEvent.objects.create(
        actor_kind=ActorKind.PARTNER, actor_ref=f"partner:{world['a'][Device].partner_id}",
        action=Action.ACCESS_DECISION, outcome=Outcome.SUCCESS, reason="granted",
        company_id=resident.company_id, building_id=world["a"][Building].pk,
        device_ref=world["a"][Device].partner_device_ref, subject_ref=pseudonymous_ref("resident", resident.pk),
    )
    response = manager.get(card_url(resident))
    assert response.status_code == 200
    assert '<html lang="ru"' in response.content.decode()
    text = text_of(response)
    assert NAMES["a"] in text
    assert "+79160000007" in text  # the phone, decrypted for staff
    assert "ЖК A, корпус 1, кв. 12" in text  # flat
    assert "пн–пт 07:00–23:00" in text  # the schedule in words
    assert "A123BC77" in text  # the car's plate (stored normalised)
    assert "E777KX77" in text  # the guest pass
    assert "действует, скоро истекает" in text  # the consent's state (retention ends in 30 days)
    assert "подписанная квитанция" in text
    assert "Вход в приложение и приглашения" in text  # identity's section
    assert "Машина пропущена (доступ жителя)" in text  # the decision in the timeline, with the name
    assert text.count(NAMES["a"]) >= 2


def test_a_consent_receipt_downloads_signed_and_pseudonymous(manager, world):
    resident, consent = world["a"][Resident], world["a"][Consent]
    response = manager.get(f"/admin/access/resident/{resident.pk}/consents/{consent.pk}/receipt/")
    assert response.status_code == 200
    receipt = response.json()
    assert receipt["consent_ref"] == f"consent:{consent.pk}"
    assert receipt["signature"]["alg"] == "Ed25519"
    assert NAMES["a"] not in response.content.decode()


def test_another_companys_resident_device_and_receipts_are_404(manager, world):
    foreign = world["b"]
    assert manager.get(card_url(foreign[Resident])).status_code == 404
    assert manager.get(card_url(foreign[Device])).status_code == 404
    assert manager.get(f"/admin/access/resident/{foreign[Resident].pk}/consents/{foreign[Consent].pk}/receipt/") \
        .status_code == 404
    # a consent of company B through company A's resident: not theirs, 404 too
    assert manager.get(f"/admin/access/resident/{world['a'][Resident].pk}/consents/{foreign[Consent].pk}/receipt/") \
        .status_code == 404
    assert manager.get("/admin/access/resident/999999/card/").status_code == 404


# --- finding residents, human labels, one-line inputs -------------------------------------------


@pytest.mark.parametrize("term", ["8 (916) 000-00-07", "+7 916 000 00 07", "иванов", "а 123 вс 77", "12"])
def test_residents_are_found_by_phone_name_plate_or_flat(manager, world, term):
    text = text_of(manager.get("/admin/access/resident/", {"q": term}))
    assert NAMES["a"] in text
    assert NAMES["b"] not in text


def test_cars_show_their_owners_name_and_flat(manager, world):
    text = text_of(manager.get("/admin/access/vehicle/"))
    assert NAMES["a"] in text
    assert "ЖК A, корпус 1, кв. 12" in text
    assert "Житель №" not in text
    assert "Resident #" not in text
    assert NAMES["b"] not in text


def test_short_encrypted_fields_are_single_line_inputs(manager):
    html = manager.get("/admin/access/resident/add/").content.decode()
    for name in ("full_name", "phone", "email"):
        assert re.search(rf'<input type="text" name="{name}"', html), name
        assert f'<textarea name="{name}"' not in html


def test_the_resident_autocomplete_names_residents(manager, world):
    response = manager.get("/admin/autocomplete/", {"app_label": "access", "model_name": "vehicle",
                                                    "field_name": "resident", "term": "Иванов"})
    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["text"].startswith(NAMES["a"])
    assert "кв. 12" in result["text"]


# --- guest passes -----------------------------------------------------------------------------


def test_a_manager_creates_a_guest_pass_for_a_resident(manager, world):
    resident, barrier = world["a"][Resident], world["a"][Device]
    start = portal_now() + datetime.timedelta(minutes=10)
    form = {"resident": resident.pk, "device": barrier.pk, "plate": "о 001 оо 77", "label": "курьер",
            "valid_from_0": start.strftime("%d.%m.%Y"), "valid_from_1": start.strftime("%H:%M:%S"),
            "valid_until_0": (start + datetime.timedelta(hours=3)).strftime("%d.%m.%Y"),
            "valid_until_1": (start + datetime.timedelta(hours=3)).strftime("%H:%M:%S")}
    before = GuestPass.objects.count()
    response = manager.post(f"/admin/access/guestpass/add/?next={card_url(resident)}", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert response["Location"] == card_url(resident)
    assert GuestPass.objects.count() == before + 1
    event = AuditEvent.objects.filter(action=Action.RESIDENT_GUEST_PASS_CREATE).latest("id")
    assert (event.actor_kind, event.outcome) == (ActorKind.STAFF, Outcome.SUCCESS)


def test_a_guest_pass_is_refused_with_a_readable_reason(manager, world):
    resident, barrier = world["a"][Resident], world["a"][Device]
    AccessGrant.objects.filter(resident=resident).update(suspended=True)
    now = portal_now()
    response = manager.post("/admin/access/guestpass/add/", {
        "resident": resident.pk, "device": barrier.pk, "plate": "О001ОО77",
        "valid_from_0": now.strftime("%d.%m.%Y"), "valid_from_1": now.strftime("%H:%M:%S"),
        "valid_until_0": (now + datetime.timedelta(hours=2)).strftime("%d.%m.%Y"),
        "valid_until_1": (now + datetime.timedelta(hours=2)).strftime("%H:%M:%S")})
    assert response.status_code == 200
    assert "Доступ жителя к этому устройству приостановлен." in text_of(response)


def test_a_manager_revokes_a_guest_pass_from_the_residents_page(manager, world):
    resident, guest_pass = world["a"][Resident], world["a"][GuestPass]
    response = manager.post(f"/admin/access/guestpass/{guest_pass.pk}/revoke/?next={card_url(resident)}")
    assert response.status_code == 302
    assert response["Location"] == card_url(resident)
    guest_pass.refresh_from_db()
    assert guest_pass.revoked_at is not None
    event = AuditEvent.objects.get(action=Action.RESIDENT_GUEST_PASS_REVOKE)
    assert event.actor_kind == ActorKind.STAFF


def test_another_companys_guest_pass_cannot_be_revoked(manager, world):
    foreign = world["b"][GuestPass]
    assert manager.post(f"/admin/access/guestpass/{foreign.pk}/revoke/").status_code == 404
    foreign.refresh_from_db()
    assert foreign.revoked_at is None
    assert not AuditEvent.objects.filter(action=Action.RESIDENT_GUEST_PASS_REVOKE).exists()


def test_a_compliance_officer_sees_passes_but_cannot_revoke(client, world, users):
    login_verified(client, users.compliance)
    guest_pass = world["a"][GuestPass]
    assert GUEST_PLATES["a"].replace("Е", "E").replace("К", "K").replace("Х", "X") in text_of(
        client.get("/admin/access/guestpass/"))
    assert client.post(f"/admin/access/guestpass/{guest_pass.pk}/revoke/").status_code == 403
    guest_pass.refresh_from_db()
    assert guest_pass.revoked_at is None


def test_the_guest_pass_list_is_the_companys_own(manager, world):
    text = text_of(manager.get("/admin/access/guestpass/"))
    assert NAMES["a"] in text
    assert NAMES["b"] not in text


# --- devices ----------------------------------------------------------------------------------


def test_a_devices_page_shows_state_contract_timeline_and_the_open_form(manager, world):
    device = world["a"][Device]
    AuditEvent.objects.create(
        actor_kind=ActorKind.PARTNER, actor_ref=f"partner:{device.partner_id}", action=Action.ACCESS_DECISION,
        outcome=Outcome.DENIED, reason="unknown_credential", company_id=device.building.company_id,
        building_id=device.building_id, device_ref=device.partner_device_ref,
    )
    response = manager.get(card_url(device))
    assert response.status_code == 200
    text = text_of(response)
    assert "AG-A-1" in text  # the contract covering it
    assert "Отказ: неизвестный номер или лицо" in text  # the timeline
    assert "Кто у двери" in text  # the open form
    listing = text_of(manager.get("/admin/access/device/"))
    assert "Отказ: неизвестный номер или лицо" in listing  # the last event, in the list


def test_a_compliance_officer_gets_no_open_form(client, world, users):
    login_verified(client, users.compliance)
    device = world["a"][Device]
    assert "Кто у двери" not in text_of(client.get(card_url(device)))
    assert client.post(f"/admin/access/device/{device.pk}/open/", {"reason": "courier",
                                                                   "token": "0" * 32}).status_code == 403


# --- consents ---------------------------------------------------------------------------------


def test_the_consents_page_counts_the_companys_consents(manager, world):
    response = manager.get("/admin/consents/")
    assert response.status_code == 200
    assert response.context["totals"] == {"active": 1, "expiring": 1, "revoked_recently": 0}
    text = text_of(response)
    assert NAMES["a"] in text  # expiring soon, with the name
    assert NAMES["b"] not in text
    assert "Partner B" not in text


def test_the_consents_page_lists_a_revoked_consent(manager, world, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        consent_revoke(consent=world["a"][Consent], reason="resident")
    response = manager.get("/admin/consents/")
    assert response.context["totals"] == {"active": 0, "expiring": 0, "revoked_recently": 1}
    [row] = response.context["revoked"]
    assert row["consent"].pk == world["a"][Consent].pk
    assert NAMES["a"] in text_of(response)


def test_the_consents_page_needs_a_consent_permission(client, users, world):
    login_verified(client, users.security)
    assert client.get("/admin/consents/").status_code == 403


# --- dashboards -------------------------------------------------------------------------------


def decision(building, reason: str, outcome=Outcome.DENIED, hours_ago: float = 0):
    return AuditEvent.objects.create(
        occurred_at=timezone.now() - datetime.timedelta(hours=hours_ago), actor_kind=ActorKind.PARTNER,
        action=Action.ACCESS_DECISION, outcome=outcome, reason=reason, company_id=building.company_id,
        building_id=building.pk,
    )


def test_the_company_dashboard_charts_passes_and_denials_by_reason(manager, world):
    building = world["a"][Building]
    decision(building, "granted", Outcome.SUCCESS)
    decision(building, "no_grant")
    decision(building, "no_grant", hours_ago=3)
    decision(world["b"][Building], "unknown_credential")  # another company's
    response = manager.get("/admin/dashboard/")
    assert response.status_code == 200
    assert (response.context["passes_24h"], response.context["denials_24h"]) == (1, 2)
    html = response.content.decode()
    assert html.count('class="series series-no_grant"') == 2
    assert html.count('class="series series-granted"') == 1
    assert "series-unknown_credential" not in html
    text = text_of(response)
    assert "нет доступа к устройству — 2" in text  # most frequent denials
    assert "Partner A" in text
    assert "Partner B" not in text
    assert "Шлагбаум A" in text  # offline devices
    assert "Шлагбаум B" not in text


def test_the_building_dashboard_adds_reasons_and_partners(manager, world):
    building = world["a"][Building]
    decision(building, "outside_schedule")
    response = manager.get(f"/admin/dashboard/{building.pk}/")
    assert response.status_code == 200
    assert 'class="series series-outside_schedule"' in response.content.decode()
    assert "Partner A" in text_of(response)


# --- the audit export form --------------------------------------------------------------------


def test_the_export_form_offers_the_companys_buildings_and_partners_with_date_pickers(manager, world):
    response = manager.get("/admin/audit/auditevent/export/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('type="date"') == 2
    assert f'value="{timezone.localdate().replace(day=1).isoformat()}"' in html  # the month so far
    assert "ЖК A, корпус 1" in html
    assert "Partner A" in html
    assert "ЖК B, корпус 1" not in html
    assert "Partner B" not in html


def test_a_manager_exports_the_month_for_one_building(manager, world):
    building = world["a"][Building]
    decision(building, "granted", Outcome.SUCCESS)
    today = timezone.localdate()
    response = manager.post("/admin/audit/auditevent/export/", {
        "format": "jsonl", "since": today.replace(day=1).isoformat(), "until": today.isoformat(),
        "building": building.pk})
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().splitlines()
    events = list(lines[:-1])
    assert events
    assert all(f'"building_id": "{building.pk}"' in line or f'"building_id":"{building.pk}"' in line
                          for line in events)
    assert AuditEvent.objects.filter(action=Action.AUDIT_EXPORTED).exists()


def test_another_companys_building_is_not_a_choice(manager, world):
    response = manager.post("/admin/audit/auditevent/export/", {"format": "csv",
                                                                "building": world["b"][Building].pk})
    assert response.status_code == 200  # the form again, with an error; nothing exported
    assert "building" in response.context["form"].errors
    assert not AuditEvent.objects.filter(action=Action.AUDIT_EXPORTED).exists()


# --- the second company's manager sees none of it ----------------------------------------------


def test_the_other_companys_manager_sees_nothing_of_company_a(client, world, users):
    from core.security.roles import PROPERTY_MANAGER
    from tests.admin.conftest import staff_user

    other = staff_user("manager-b", company=world["b"][Building].company, roles=[PROPERTY_MANAGER])
    login_verified(client, other)
    for url in ("/admin/access/resident/", "/admin/access/vehicle/", "/admin/access/guestpass/",
                "/admin/access/device/", "/admin/consents/", "/admin/dashboard/",
                "/admin/audit/auditevent/export/"):
        response = client.get(url)
        assert response.status_code == 200, url
        text = text_of(response)
        for leak in (NAMES["a"], "ЖК A", "Partner A"):
            assert leak not in text, url
    for url in (card_url(world["a"][Resident]), card_url(world["a"][Device])):
        assert client.get(url).status_code == 404
    assert world["a"][Vehicle].plate == "A123BC77"
    assert PLATES["a"]  # the fixture's plate, typed in Cyrillic
    assert Unit.objects.filter(pk=world["a"][Unit].pk).exists()
    assert Invitation.objects.filter(resident=world["a"][Resident]).exists()


def test_chart_coordinates_keep_a_decimal_point_in_russian(manager, world):
    """Russian writes 206,0; an SVG attribute so written is an error the browser drops."""
    building = world["a"][Building]
    for url in ("/admin/dashboard/", f"/admin/dashboard/{building.pk}/"):
        html = manager.get(url).content.decode()
        svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
        assert svgs, url
        values = re.findall(r'\s(?:x|y|x1|x2|y1|y2|width|height|viewBox)="([^"]*)"', "".join(svgs))
        assert values, url
        assert [value for value in values if "," in value] == [], url
