"""Company isolation for every company-scoped model in the admin.

A staff user of company A holding EVERY permission (so only the scope can hide a row) sees,
for each model: only A's rows in the list; 404 for B's change, delete and history pages; no B
row from the autocomplete endpoint, in list-filter choices or in add-form choices; and bulk
actions ignore B's ids. The same checks run for a superuser as a control: there B's rows do
appear, so each assertion is able to fail.
"""

import pytest
from django.contrib import admin
from django.contrib.admin.filters import RelatedFieldListFilter
from django.urls import reverse

from access.models import AccessGrant, Building, Device, Residency, Resident, StaffMembership, Unit, Vehicle
from core.portal.isolation import CompanyScopedAdminMixin
from partners.models import PartnerContract, PartnerCredentials
from tests.admin.conftest import login_verified

pytestmark = pytest.mark.django_db

def scoped_models():
    return sorted(
        (model for model, model_admin in admin.site._registry.items()
         if isinstance(model_admin, CompanyScopedAdminMixin)),
        key=lambda m: m._meta.label,
    )


def url(model, action, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{action}", args=args)


def ids(model):
    return pytest.param(model, id=model._meta.label)


ALL_SCOPED = [ids(m) for m in scoped_models()]


# Registered models of our apps that hold no company's data, and why.
NOT_COMPANY_DATA = {
    "partners.OutboxMessage": "the delivery queue to partners; operators only (no role holds it)",
    "access.SecurityAlert": "platform security data across companies; security admins and superusers only",
}


def test_every_company_model_is_scoped(world):
    """Each model of the world (one of everything a company owns) has a company-scoped admin."""
    assert set(world["a"]) == set(scoped_models())
    for app_label in ("access", "partners"):
        registered = {m._meta.label for m in admin.site._registry if m._meta.app_label == app_label}
        scoped = {m._meta.label for m in scoped_models()}
        assert registered - scoped <= set(NOT_COMPANY_DATA), registered - scoped


@pytest.fixture
def as_scoped(client, users):
    return login_verified(client, users.scoped)


@pytest.fixture
def as_root(client, users):
    return login_verified(client, users.root)


@pytest.mark.parametrize("model", ALL_SCOPED)
def test_list_shows_only_own_company_rows(as_scoped, world, model):
    response = as_scoped.get(url(model, "changelist"))
    assert response.status_code == 200
    shown = {obj.pk for obj in response.context["cl"].queryset}
    assert world["a"][model].pk in shown
    assert world["b"][model].pk not in shown


@pytest.mark.parametrize("model", ALL_SCOPED)
def test_control_superuser_list_shows_both(as_root, world, model):
    shown = {obj.pk for obj in as_root.get(url(model, "changelist")).context["cl"].queryset}
    assert {world["a"][model].pk, world["b"][model].pk} <= shown


@pytest.mark.parametrize("model", ALL_SCOPED)
@pytest.mark.parametrize("action", ["change", "delete", "history"])
def test_foreign_ids_are_404_own_ids_open(as_scoped, world, model, action):
    foreign = as_scoped.get(url(model, action, world["b"][model].pk))
    assert foreign.status_code == 404
    own = as_scoped.get(url(model, action, world["a"][model].pk))
    # own rows open; 403 only where the model admin refuses deleting (credential history)
    assert own.status_code in ((200, 403) if action == "delete" else (200,))


@pytest.mark.parametrize("model", ALL_SCOPED)
def test_unknown_and_malformed_ids_are_404_too(as_scoped, model):
    assert as_scoped.get(url(model, "change", 987654321)).status_code == 404
    assert as_scoped.get(url(model, "change", "not-a-number")).status_code == 404


def test_foreign_delete_by_post_changes_nothing(as_scoped, world):
    building = world["b"][Building]
    response = as_scoped.post(url(Building, "delete", building.pk), {"post": "yes"})
    assert response.status_code == 404
    assert Building.objects.filter(pk=building.pk).exists()


def autocomplete_sources():
    """(target model, source model, field) for every autocomplete field of every admin."""
    found = []
    for source, model_admin in admin.site._registry.items():
        for name in model_admin.autocomplete_fields:
            target = source._meta.get_field(name).remote_field.model
            found.append(pytest.param(target, source, name, id=f"{source._meta.label}.{name}"))
    return found


@pytest.mark.parametrize(("target", "source", "field"), autocomplete_sources())
def test_autocomplete_returns_no_foreign_rows(as_scoped, world, target, source, field):
    if target not in world["a"]:
        pytest.skip(f"{target._meta.label} is not company data")
    query = {"app_label": source._meta.app_label, "model_name": source._meta.model_name, "field_name": field}
    response = as_scoped.get("/admin/autocomplete/", query)
    assert response.status_code == 200
    returned = {int(r["id"]) for r in response.json()["results"]}
    assert world["a"][target].pk in returned
    assert world["b"][target].pk not in returned


def test_autocomplete_control_superuser_sees_both(as_root, world):
    query = {"app_label": "access", "model_name": "device", "field_name": "building"}
    returned = {int(r["id"]) for r in as_root.get("/admin/autocomplete/", query).json()["results"]}
    assert {world["a"][Building].pk, world["b"][Building].pk} <= returned


def related_filter_choices(response):
    """{related model: {pk offered}} over the changelist's relation filters."""
    offered = {}
    for spec in response.context["cl"].filter_specs:
        if isinstance(spec, RelatedFieldListFilter):
            model = spec.field.related_model
            offered.setdefault(model, set()).update(int(pk) for pk, _label in spec.lookup_choices)
    return offered


@pytest.mark.parametrize("model", ALL_SCOPED)
def test_list_filters_offer_no_foreign_choices(as_scoped, world, model):
    offered = related_filter_choices(as_scoped.get(url(model, "changelist")))
    for related, pks in offered.items():
        if related in world["b"]:
            assert world["b"][related].pk not in pks, related


def test_list_filters_control_superuser_sees_foreign_choices(as_root, world):
    offered = related_filter_choices(as_root.get(url(Device, "changelist")))
    assert world["b"][Building].pk in offered[Building]
    assert world["b"][Building].pk in related_filter_choices(as_root.get(url(Resident, "changelist")))[Building]


def test_foreign_filter_values_in_the_url_show_nothing(as_scoped, world):
    response = as_scoped.get(url(Device, "changelist"), {"building__id__exact": world["b"][Building].pk})
    assert response.status_code == 200
    assert world["b"][Device] not in response.context["cl"].queryset


def form_choices(response):
    """{related model: {pk}} of every model-choice field of the add form (plain or autocomplete)."""
    choices = {}
    for name, field in response.context["adminform"].form.fields.items():
        queryset = getattr(field, "queryset", None)
        if queryset is not None:
            choices[(queryset.model, name)] = set(queryset.values_list("pk", flat=True))
    return choices


@pytest.mark.parametrize("model", ALL_SCOPED)
def test_add_form_choices_exclude_foreign_rows(as_scoped, world, model):
    response = as_scoped.get(url(model, "add"))
    if response.status_code == 403:
        assert not admin.site._registry[model].has_add_permission(response.wsgi_request)
        pytest.skip("rows of this model are not added in the admin")
    assert response.status_code == 200
    checked = 0
    for (related, _name), pks in form_choices(response).items():
        if related in world["a"]:
            assert world["b"][related].pk not in pks, (related, _name)
            assert world["a"][related].pk in pks, (related, _name)
            checked += 1
    assert checked or model._meta.label in ("access.ManagementCompany", "partners.Partner")  # no relations


def test_add_form_control_superuser_sees_foreign_choices(as_root, world):
    choices = form_choices(as_root.get(url(AccessGrant, "add")))
    assert world["b"][Building].pk in choices[(Building, "building")]


def test_a_forged_foreign_choice_is_refused_and_nothing_changes(as_scoped, world):
    # a device never moves to another building: the field is not even on the change form
    device = world["a"][Device]
    as_scoped.post(url(Device, "change", device.pk), {
        "name": device.name, "kind": device.kind, "building": world["b"][Building].pk,
        "partner": device.partner_id, "partner_device_ref": device.partner_device_ref,
    })
    device.refresh_from_db()
    assert device.building_id == world["a"][Building].pk
    # a choice that is on a change form: a contract's buildings
    contract = world["a"][PartnerContract]
    response = as_scoped.post(url(PartnerContract, "change", contract.pk), {
        "buildings": [world["b"][Building].pk], "valid_from_0": "2026-01-01", "valid_from_1": "00:00:00",
        "purpose": contract.purpose, "retention_days": contract.retention_days,
        "agreement_ref": contract.agreement_ref,
    })
    assert response.status_code == 200  # the form again
    assert "buildings" in response.context["adminform"].form.errors
    assert list(contract.buildings.values_list("pk", flat=True)) == [world["a"][Building].pk]


def test_a_forged_foreign_choice_on_add_creates_nothing(as_scoped, world):
    before = Unit.objects.count()
    response = as_scoped.post(url(Unit, "add"), {"building": world["b"][Building].pk, "number": "99"})
    assert response.status_code == 200
    assert "building" in response.context["adminform"].form.errors
    assert Unit.objects.count() == before


@pytest.mark.parametrize("model", [ids(m) for m in (Building, Unit, Resident, Residency, Device, AccessGrant, Vehicle,
                                                   PartnerContract, StaffMembership)])
def test_bulk_delete_ignores_foreign_ids(as_scoped, world, model):
    foreign = world["b"][model]
    response = as_scoped.post(url(model, "changelist"), {
        "action": "delete_selected", "_selected_action": [foreign.pk], "post": "yes",
    })
    assert response.status_code in (200, 302)
    assert model._default_manager.filter(pk=foreign.pk).exists()


def test_credentials_list_never_renders_secrets(as_scoped, world):
    credentials = world["a"][PartnerCredentials]
    for page in (url(PartnerCredentials, "changelist"), url(PartnerCredentials, "change", credentials.pk)):
        html = as_scoped.get(page).content.decode()
        for secret in (credentials.client_secret, credentials.plate_token_key, credentials.subject_key,
                       credentials.webhook_secret):
            assert secret not in html
        assert credentials.plate_token_key_fingerprint in html
