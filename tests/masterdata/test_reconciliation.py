"""The reconciliation read: tenant-core's ids and versions of one building against ours."""

import pytest

from audit.models import AuditEvent
from tests.masterdata.conftest import RECONCILIATION, building, estate, residency, resident, unit, vehicle

pytestmark = pytest.mark.django_db


def listing(*records) -> list[dict]:
    return [{"type": r["type"], "id": r["id"], "version": r["version"]} for r in records]


@pytest.fixture
def stocked(north):
    north.results([*estate(), unit(external="U-2", number="102"), building(external="B-2", name="Корпус 2"),
                   unit(external="U-9", building_="B-2", number="1")])
    return north


def test_everything_matches(stocked):
    _company, home, flat, person, stay, car = estate()
    response = stocked.api.post(RECONCILIATION, {"building": "B-1", "records": listing(
        home, flat, unit(external="U-2", number="102"), person, stay, car)}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"matching": 6, "differ": [], "missing": [], "unexpected": []}


def test_what_differs_what_is_missing_and_what_is_unexpected(stocked):
    _company, home, flat, _person, stay, _car = estate()
    events = AuditEvent.objects.count()
    records = [
        *listing(home, flat, resident(version=4), stay),
        {"type": "unit", "id": "U-3", "version": 1},  # the source has a flat we never got
        {"type": "vehicle", "id": "V-1", "updated_at": "2026-11-30T10:00:00Z"},
    ]
    answer = stocked.api.post(RECONCILIATION, {"building": "B-1", "records": records}, format="json").json()
    assert answer["matching"] == 3
    assert answer["differ"] == [{"type": "resident", "id": "R-1", "version": 1},
                                {"type": "vehicle", "id": "V-1", "version": 1}]
    assert answer["missing"] == [{"type": "unit", "id": "U-3"}]
    # U-2 is ours for B-1 and the source did not list it; B-2's flat U-9 is not B-1's business
    assert answer["unexpected"] == [{"type": "unit", "id": "U-2", "version": 1}]
    assert AuditEvent.objects.count() == events  # a read


def test_a_deleted_record_is_missing_here(stocked):
    stocked.results([{**vehicle(version=2), "deleted": True}])
    answer = stocked.api.post(RECONCILIATION, {"building": "B-1", "records": listing(vehicle())},
                              format="json").json()
    assert answer["missing"] == [{"type": "vehicle", "id": "V-1"}]


def test_another_clients_building_is_not_found(stocked, south):
    response = south.api.post(RECONCILIATION, {"building": "B-1", "records": []}, format="json")
    assert response.status_code == 404
    response = stocked.api.post(RECONCILIATION, {"building": "B-404", "records": []}, format="json")
    assert response.status_code == 404


def test_the_request_follows_the_input_rules(stocked):
    response = stocked.api.post(RECONCILIATION, {"building": "B-1", "records": [
        {"type": "unit", "id": "U-1", "version": 1, "deleted": True}]}, format="json")
    assert response.status_code == 400
    assert [(e["field"].rsplit(".", 1)[-1], e["code"]) for e in response.json()["errors"]] == [
        ("deleted", "unknown_field")]
    response = stocked.api.post(RECONCILIATION, {"building": "B-1", "records": [
        {"type": "unit", "id": "U-1"}]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"].endswith("version")


def test_residency_listing_covers_residents_who_moved_in(stocked):
    stocked.results([resident(external="R-2", phone="+79160000002"),
                     residency(external="RS-2", resident_="R-2", unit_="U-2")])
    answer = stocked.api.post(RECONCILIATION, {"building": "B-1", "records": []}, format="json").json()
    assert {(item["type"], item["id"]) for item in answer["unexpected"]} == {
        ("building", "B-1"), ("unit", "U-1"), ("unit", "U-2"), ("resident", "R-1"), ("resident", "R-2"),
        ("residency", "RS-1"), ("residency", "RS-2"), ("vehicle", "V-1")}
