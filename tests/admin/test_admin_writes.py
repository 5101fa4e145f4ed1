"""Admin forms write through the services: a field that access depends on never changes by a plain
model save (no allowlist patch, no consent revocation, no rule applied), and a field whose change
would move a row to another owner is not on the change form at all."""

import datetime
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from access.errors import RuleDenied
from access.models import AccessGrant, Building, Device, Residency, Resident, VehiclePlateToken
from access.reasons import Reason
from access.services.allowlist import site_ref
from access.services.decisions import access_decide
from access.services.grants import grant_create
from access.services.opening import device_authorise
from audit.actions import Action
from audit.models import AuditEvent
from consent.models import Consent
from core.portal.service_forms import ServiceBackedAdminMixin
from partners.models import OutboxMessage, Partner, PartnerContract
from tests.admin.conftest import login_verified

pytestmark = pytest.mark.django_db


class _FormFields(HTMLParser):
    """What a browser submits for the admin's change form, unchanged (inputs, selects, textareas)."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._in_form = False
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id", "").endswith("_form"):
            self._in_form = True
        if not self._in_form or attrs.get("disabled") is not None:
            return
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "button", "file"):
            if attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
                return
            default = "on" if attrs.get("type") == "checkbox" else ""
            self.data.setdefault(name, []).append(attrs.get("value") or default)
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in attrs:
            self.data[self._select].append(attrs.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = [""]

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._in_form = False

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea][0] += data


def change_form_data(client, url) -> dict:
    page = client.get(url)
    assert page.status_code == 200
    parser = _FormFields()
    parser.feed(page.content.decode())
    return {name: values if len(values) != 1 else values[0] for name, values in parser.data.items()}


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def service_backed_models():
    return [pytest.param(model, id=model._meta.label) for model, model_admin in admin.site._registry.items()
            if isinstance(model_admin, ServiceBackedAdminMixin)]


@pytest.mark.parametrize("model", service_backed_models())
def test_every_change_form_goes_through_a_service(client, world, users, model):
    """Submitting a change form as it is shown records the service's own audit event (a plain model
    save would leave only django-auditlog's entry) - or the form has nothing to change (a row that
    is only added or deleted, never edited: its page is read-only and a POST is refused or a no-op)."""
    login_verified(client, users.root)
    obj = world["a"].get(model) or model.objects.order_by("pk").first()  # rows of no company: the first
    data = change_form_data(client, change_url(obj))
    editable = [name for name in data if not name.startswith(("csrfmiddlewaretoken", "_"))
                and "-" not in name]  # inline formsets' management and row fields are not the row's
    before = AuditEvent.objects.count()
    response = client.post(change_url(obj), data)
    if not editable:
        assert response.status_code in (302, 403)
        assert AuditEvent.objects.count() == before
        return
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    assert AuditEvent.objects.count() == before + 1, data


@pytest.mark.parametrize(("model", "fixed"), [
    (Building, "company"), (Device, "building"), (Device, "partner"), (Residency, "resident"), (Residency, "unit"),
    (AccessGrant, "resident"), (AccessGrant, "building"), (PartnerContract, "company"), (Resident, "company"),
])
def test_fields_that_move_a_row_are_not_on_the_change_form(client, world, users, model, fixed):
    login_verified(client, users.root)
    data = change_form_data(client, change_url(world["a"][model]))
    assert fixed not in data


@pytest.fixture
def moved_in(world):
    """Company A's resident with a grant held through their residency, and a car at company A's barrier."""
    residency = world["a"][Residency]
    grant = grant_create(residency=residency, building=world["a"][Building])
    AccessGrant.objects.filter(pk=world["a"][AccessGrant].pk).delete()  # only the residency's grant
    return residency, grant


def test_a_move_out_date_entered_in_the_form_revokes_access(client, world, users, moved_in):
    residency, grant = moved_in
    resident, device, partner = world["a"][Resident], world["a"][Device], world["a"][Partner]
    token = VehiclePlateToken.objects.get(vehicle__resident=resident, partner=partner).token
    consent = world["a"][Consent]
    assert access_decide(partner=partner, device_ref=device.partner_device_ref, credential_type="plate",
                         credential_token=token).reason == Reason.GRANTED
    login_verified(client, users.manager)
    last = OutboxMessage.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    data = change_form_data(client, change_url(residency))
    data["valid_until"] = (timezone.localdate() - datetime.timedelta(days=1)).isoformat()
    response = client.post(change_url(residency), data)
    assert response.status_code == 302
    assert Residency.objects.get(pk=residency.pk).valid_until == timezone.localdate() - datetime.timedelta(days=1)
    assert AccessGrant.objects.get(pk=grant.pk).valid_until <= timezone.now()  # its grants end with it
    patches = OutboxMessage.objects.filter(partner=partner, operation="allowlist_patch", pk__gt=last)
    assert any(patch.payload["site_ref"] == site_ref(device.building_id)
               and {"type": "plate", "token": token} in patch.payload["removals"] for patch in patches)
    assert Consent.objects.get(pk=consent.pk).revoked_reason == "move_out"
    assert AuditEvent.objects.filter(object_ref=f"residency:{residency.pk}", reason="ended").exists()
    # the app and the partner now agree: no way in
    device = Device.objects.select_related("building", "partner").get(pk=device.pk)
    with pytest.raises(RuleDenied):
        device_authorise(user=resident.user, resident=Resident.objects.get(pk=resident.pk), device=device,
                         operation="open", action=Action.RESIDENT_OPEN)
    assert not access_decide(partner=partner, device_ref=device.partner_device_ref, credential_type="plate",
                             credential_token=token).reason.allows


def test_a_grant_changed_in_the_form_patches_the_allowlist(client, world, users):
    grant, partner = world["a"][AccessGrant], world["a"][Partner]
    login_verified(client, users.manager)
    before = OutboxMessage.objects.filter(partner=partner, operation="allowlist_patch").count()
    data = change_form_data(client, change_url(grant))
    data["suspended"] = "on"
    assert client.post(change_url(grant), data).status_code == 302
    assert AccessGrant.objects.get(pk=grant.pk).suspended is True
    assert OutboxMessage.objects.filter(partner=partner, operation="allowlist_patch").count() == before + 1
    assert AuditEvent.objects.filter(object_ref=f"grant:{grant.pk}", reason="updated").exists()


def test_a_device_ref_changed_in_the_form_pushes_the_site(client, world, users):
    device, partner = world["a"][Device], world["a"][Partner]
    login_verified(client, users.manager)
    data = change_form_data(client, change_url(device))
    data["partner_device_ref"] = "gate-a-renamed"
    assert client.post(change_url(device), data).status_code == 302
    full = OutboxMessage.objects.filter(partner=partner, operation="allowlist_put").latest("pk")
    assert full.payload["site_ref"] == site_ref(device.building_id)
    assert all(entry["device_refs"] == ["gate-a-renamed"] for entry in full.payload["entries"])
    assert full.payload["entries"]


def test_a_residency_deleted_in_the_admin_goes_through_the_service(client, world, users, moved_in):
    residency, _grant = moved_in
    login_verified(client, users.manager)
    url = reverse("admin:access_residency_delete", args=[residency.pk])
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not Residency.objects.filter(pk=residency.pk).exists()
    assert AuditEvent.objects.filter(object_ref=f"residency:{residency.pk}", reason="deleted").exists()
    assert Consent.objects.get(pk=world["a"][Consent].pk).revoked_reason == "move_out"
