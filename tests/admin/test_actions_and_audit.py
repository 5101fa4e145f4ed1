"""Bulk actions go through the services; every admin change is in the audit trail, masked."""

import pytest
from auditlog.models import LogEntry
from django.utils import timezone

from access.models import AccessGrant, Building, Residency, Resident, Vehicle
from audit.models import AuditEvent
from partners.models import PartnerCredentials
from tests.admin.conftest import NAMES, PLATES, login_verified

pytestmark = pytest.mark.django_db


def run_action(client, changelist, action, pks):
    return client.post(changelist, {"action": action, "_selected_action": [str(pk) for pk in pks]})


def test_suspend_grants_suspends_own_and_ignores_foreign(client, world, users):
    login_verified(client, users.manager)
    own, foreign = world["a"][AccessGrant], world["b"][AccessGrant]
    response = run_action(client, "/admin/access/accessgrant/", "suspend_grants", [own.pk, foreign.pk])
    assert response.status_code == 302
    own.refresh_from_db()
    foreign.refresh_from_db()
    assert own.suspended is True
    assert foreign.suspended is False
    assert AuditEvent.objects.filter(object_ref=f"grant:{own.pk}", reason="suspended").count() == 1


def test_move_out_ends_residencies_and_suspends_personal_grants(client, world, users):
    login_verified(client, users.manager)
    resident = world["a"][Resident]
    response = run_action(client, "/admin/access/resident/", "move_out", [resident.pk, world["b"][Resident].pk])
    assert response.status_code == 302
    residency = Residency.objects.get(pk=world["a"][Residency].pk)
    assert residency.valid_until == timezone.localdate()
    assert AccessGrant.objects.get(pk=world["a"][AccessGrant].pk).suspended is True
    assert Residency.objects.get(pk=world["b"][Residency].pk).valid_until is None
    assert AccessGrant.objects.get(pk=world["b"][AccessGrant].pk).suspended is False


def test_end_residency_action(client, world, users):
    login_verified(client, users.manager)
    residency = world["a"][Residency]
    run_action(client, "/admin/access/residency/", "end_residency", [residency.pk])
    residency.refresh_from_db()
    assert residency.valid_until == timezone.localdate()
    assert AuditEvent.objects.filter(object_ref=f"residency:{residency.pk}", reason="ended").exists()


def test_rotation_issues_a_new_version_and_shows_fingerprints_only(client, world, users):
    login_verified(client, users.manager)
    old = world["a"][PartnerCredentials]
    response = run_action(client, "/admin/partners/partnercredentials/", "rotate_credentials", [old.pk])
    assert response.status_code == 302
    new = PartnerCredentials.objects.current().get(partner=old.partner)
    assert new.version == old.version + 1
    old.refresh_from_db()
    assert old.revoked_at is not None
    page = client.get(response["Location"]).content.decode()
    assert new.plate_token_key_fingerprint in page
    for secret in (new.plate_token_key, new.webhook_secret, new.client_secret):
        assert secret not in page
    # the foreign partner's credentials cannot be rotated by id
    foreign = world["b"][PartnerCredentials]
    run_action(client, "/admin/partners/partnercredentials/", "rotate_credentials", [foreign.pk])
    assert PartnerCredentials.objects.current().get(partner=foreign.partner).pk == foreign.pk


def test_emergency_rotation_revokes_the_previous_secrets_at_once_and_is_audited(client, world, users):
    login_verified(client, users.manager)
    old = world["a"][PartnerCredentials]
    response = run_action(client, "/admin/partners/partnercredentials/", "rotate_credentials_emergency", [old.pk])
    assert response.status_code == 302
    new = PartnerCredentials.objects.current().get(partner=old.partner)
    old.refresh_from_db()
    assert (new.version, old.revoked_without_grace, new.revoked_without_grace) == (old.version + 1, True, False)
    assert old.revoked_at is not None
    assert AuditEvent.objects.filter(object_ref=f"partner_credentials:{new.pk}", reason="rotated_emergency").exists()
    page = client.get(response["Location"]).content.decode()
    assert "Previous secrets revoked at once" in page
    assert new.webhook_secret not in page
    foreign = world["b"][PartnerCredentials]  # another company's partner: untouched
    run_action(client, "/admin/partners/partnercredentials/", "rotate_credentials_emergency", [foreign.pk])
    foreign.refresh_from_db()
    assert (foreign.revoked_at, foreign.revoked_without_grace) == (None, False)


def test_adding_a_resident_goes_through_the_service(client, world, users):
    login_verified(client, users.manager)
    company = world["a"][Building].company
    response = client.post("/admin/access/resident/add/", {
        "company": company.pk, "full_name": "Сидоров Пётр", "phone": "+79160001122", "email": "p@example.ru",
        **inline_management(),
    })
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    resident = Resident.objects.order_by("-pk").first()
    assert resident.full_name == "Сидоров Пётр"
    assert resident.user.username.startswith("r-")  # created by resident_create, no personal data
    assert AuditEvent.objects.filter(object_type="resident", reason="created", company_id=company.pk).exists()


def inline_management():
    data = {}
    for prefix in ("residencies", "grants", "vehicles"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0",
                     f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"})
    return data


def test_a_service_refusal_is_a_form_error_not_a_server_error(client, world, users):
    login_verified(client, users.manager)
    before = Vehicle.objects.count()
    response = client.post("/admin/access/vehicle/add/", {
        "resident": world["a"][Resident].pk, "plate": "NOT A PLATE", "label": "",
    })
    assert response.status_code == 200
    assert "plate" in response.context["adminform"].form.errors
    assert Vehicle.objects.count() == before


def test_admin_changes_are_in_the_audit_trail_with_encrypted_fields_masked(client, world, users):
    login_verified(client, users.manager)
    resident = world["a"][Resident]
    url = f"/admin/access/resident/{resident.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {name: form.initial.get(name) or "" for name in ("full_name", "phone", "email")}
    data.update(full_name="Иванова Анна Павловна", phone="+79169998877", **inline_management())
    for prefix, count in (("residencies", 1), ("grants", 1), ("vehicles", 1)):
        data[f"{prefix}-TOTAL_FORMS"] = data[f"{prefix}-INITIAL_FORMS"] = str(count)
    data["residencies-0-id"] = world["a"][Residency].pk
    data["residencies-0-resident"] = resident.pk
    data["grants-0-id"] = world["a"][AccessGrant].pk
    data["grants-0-resident"] = resident.pk
    data["grants-0-valid_until"] = ""
    data["vehicles-0-id"] = world["a"][Vehicle].pk
    data["vehicles-0-resident"] = resident.pk
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    resident.refresh_from_db()
    assert resident.full_name == "Иванова Анна Павловна"

    entry = LogEntry.objects.get_for_object(resident).filter(action=LogEntry.Action.UPDATE).latest("timestamp")
    assert entry.actor == users.manager
    assert set(entry.changes_dict) >= {"full_name", "phone"}
    assert entry.changes_dict["full_name"] == ["[encrypted]", "[encrypted]"]
    every_log = " ".join(str(e.changes) + e.object_repr for e in LogEntry.objects.all())
    for plaintext in ("Иванова Анна Павловна", NAMES["a"], "+79169998877", "9998877", PLATES["a"]):
        assert plaintext not in every_log


@pytest.mark.parametrize(("peer", "forwarded", "recorded"), [
    ("198.51.100.20", "203.0.113.99", "198.51.100.20"),  # not our proxy: its header is ignored
    ("127.0.0.1", "203.0.113.99, 198.51.100.20", "198.51.100.20"),  # our proxy: the hop it saw
])
def test_the_change_history_records_the_trusted_client_address(client, world, users, settings, peer, forwarded,
                                                               recorded):
    """auditlog's own middleware would record the first X-Forwarded-For hop, which the client writes."""
    settings.TRUSTED_PROXY_CIDRS = ["127.0.0.1/32"]
    settings.PROXY_AUTH_SECRET = "test-proxy-secret-0123456789abcdefghij"
    login_verified(client, users.manager)
    grant = world["a"][AccessGrant]
    response = client.post("/admin/access/accessgrant/", {"action": "suspend_grants", "_selected_action": [grant.pk]},
                           REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded,
                           HTTP_X_PROXY_AUTH=settings.PROXY_AUTH_SECRET)
    assert response.status_code == 302
    entry = LogEntry.objects.get_for_object(grant).filter(action=LogEntry.Action.UPDATE).latest("timestamp")
    assert (entry.actor, entry.remote_addr) == (users.manager, recorded)
