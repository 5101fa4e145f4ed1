"""Searching in the admin: every changelist and every autocomplete answers any search term for
every role (200, or 403 where the role may not look), and residents and cars are found by their
encrypted name, phone, e-mail and plate through blind indexes (access.search) - exact values
only, and never another company's."""

import pytest
from django.contrib import admin
from django.urls import reverse

from access.models import Resident, ResidentSearchTerm, Vehicle
from access.services.residents import resident_update
from tests.admin.conftest import NAMES, PLATES, login_verified

pytestmark = pytest.mark.django_db

ROLES = ("manager", "compliance", "security", "root")
TERMS = ("Иванов", "10", "А123ВС77", "Ив", "+7 (916) 000-00-07", "a@example.ru", "x' OR '1'='1", "%_\\", "٣")
NUL = "a\u0000b"  # no database stores it: refused before any page runs


def changelists():
    return [pytest.param(model, id=model._meta.label) for model in admin.site._registry]


def autocomplete_fields():
    return [
        pytest.param(source, name, id=f"{source._meta.label}.{name}")
        for source, model_admin in admin.site._registry.items() for name in model_admin.autocomplete_fields
    ]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("model", changelists())
def test_every_changelist_answers_a_search(client, world, users, role, model):
    login_verified(client, getattr(users, role))
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    for term in TERMS:
        response = client.get(url, {"q": term})
        assert response.status_code in (200, 403), (term, response.status_code)
    assert client.get(url, {"q": NUL}).status_code == 400


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("source", "field"), autocomplete_fields())
def test_every_autocomplete_answers_a_term(client, world, users, role, source, field):
    login_verified(client, getattr(users, role))
    query = {"app_label": source._meta.app_label, "model_name": source._meta.model_name, "field_name": field}
    for term in TERMS:
        response = client.get("/admin/autocomplete/", {**query, "term": term})
        assert response.status_code in (200, 403), (term, response.status_code)
    assert client.get("/admin/autocomplete/", {**query, "term": NUL}).status_code == 400


def found(client, model, term) -> set[int]:
    url = reverse(f"admin:access_{model._meta.model_name}_changelist")
    response = client.get(url, {"q": term})
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].queryset}


@pytest.fixture
def manager(client, users):
    return login_verified(client, users.manager)


def test_residents_are_found_by_name_words_phone_email_and_flat(manager, world):
    mine, theirs = world["a"][Resident].pk, world["b"][Resident].pk
    for term in ("Иванов", "иванов", "ИВАН ИВАНОВ", "Иванович Иванов", NAMES["a"], "+79160000007",
                 "8 (916) 000-00-07", "+7 916 000 00 07", "A@Example.RU", "12"):
        assert found(manager, Resident, term) == {mine}, term
    for term in ("Ива", "Иванов Пётр", "+79160000008", "b@example.ru", "Петрова", NAMES["b"]):
        assert found(manager, Resident, term) == set(), term  # no prefixes; never company B's resident
    assert theirs not in found(manager, Resident, "12")


def test_cars_are_found_by_plate_in_any_spelling(manager, world):
    mine = world["a"][Vehicle].pk
    for term in (PLATES["a"], "а123вс77", "A123BC77", "A 123 BC 77", "семейная"):
        assert found(manager, Vehicle, term) == {mine}, term
    assert found(manager, Vehicle, PLATES["b"]) == set()  # company B's car
    assert found(manager, Vehicle, "A123BC") == set()


def test_the_resident_autocomplete_finds_by_surname(manager, world):
    response = manager.get("/admin/autocomplete/", {
        "app_label": "access", "model_name": "accessgrant", "field_name": "resident", "term": "Иванов"})
    assert [int(r["id"]) for r in response.json()["results"]] == [world["a"][Resident].pk]


def test_the_index_holds_digests_not_values(world):
    resident = world["a"][Resident]
    digests = set(ResidentSearchTerm.objects.filter(resident=resident).values_list("digest", flat=True))
    assert len(digests) == 5  # three name words, the phone, the e-mail
    assert all(len(d) == 64 and "иван" not in d.lower() for d in digests)
    assert Vehicle.objects.filter(pk=world["a"][Vehicle].pk).values_list("plate_index", flat=True).get() not in (
        "", "A123BC77")


def test_a_new_name_replaces_the_old_words(manager, world, users):
    resident_update(resident=world["a"][Resident], full_name="Сидоров Пётр", actor=users.manager)
    assert found(manager, Resident, "Иванов") == set()
    assert found(manager, Resident, "сидоров петр") == {world["a"][Resident].pk}
