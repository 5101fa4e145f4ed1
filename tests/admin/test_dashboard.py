"""The building dashboard: device states and an hourly chart of decisions and opens (24 h)."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from access.dashboard import WINDOW_HOURS, hourly_counts
from access.models import Building, Device
from access.services.devices import device_set_online
from audit.actions import Action, ActorKind, Outcome
from audit.models import AuditEvent
from tests.admin.conftest import login_verified

pytestmark = pytest.mark.django_db


def event(building, action, outcome, hours_ago: float):
    """An event in the hour bucket `int(hours_ago)` hours before the current one (never in the future)."""
    current_hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    occurred_at = current_hour - timedelta(hours=int(hours_ago)) + timedelta(seconds=1)
    return AuditEvent.objects.create(
        occurred_at=occurred_at, actor_kind=ActorKind.PARTNER, action=action,
        outcome=outcome, company_id=building.company_id, building_id=building.pk,
    )


@pytest.fixture
def traffic(world):
    building = world["a"][Building]
    for _ in range(3):
        event(building, Action.ACCESS_DECISION, Outcome.SUCCESS, 0.1)
    event(building, Action.ACCESS_DECISION, Outcome.DENIED, 0.2)
    event(building, Action.ACCESS_DECISION, Outcome.SUCCESS, 5)
    event(building, Action.RESIDENT_OPEN, Outcome.SUCCESS, 2)
    event(building, Action.RESIDENT_OPEN, Outcome.FAILURE, 2)  # a failed open is not an open
    event(building, Action.ACCESS_DECISION, Outcome.SUCCESS, 30)  # outside the window
    event(world["b"][Building], Action.ACCESS_DECISION, Outcome.SUCCESS, 0.1)  # another building
    return building


def test_hourly_counts(traffic):
    hours = hourly_counts(traffic, now=timezone.now())
    assert len(hours) == WINDOW_HOURS
    assert (hours[-1].allowed, hours[-1].denied) == (3, 1)
    assert sum(h.allowed for h in hours) == 4
    assert sum(h.opens for h in hours) == 1


def test_dashboard_page_shows_devices_and_the_chart(client, world, users, traffic):
    device_set_online(device=world["a"][Device], online=True)
    login_verified(client, users.manager)
    response = client.get(f"/admin/dashboard/{traffic.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["devices_online"] == 1
    assert response.context["devices_offline"] == 0
    assert response.context["totals"] == {"allowed": 4, "denied": 1, "opens": 1}
    assert "<svg" in html
    assert len(re.findall(r'<rect class="allowed"', html)) == 2  # two hours with allowed decisions
    assert len(re.findall(r'<rect class="denied"', html)) == 1
    assert len(re.findall(r'<rect class="opens"', html)) == 1
    assert "<script" not in html.split('id="decisions-chart"')[1].split("</svg>")[0]


def test_building_list_shows_only_own_buildings(client, world, users):
    login_verified(client, users.manager)
    response = client.get("/admin/dashboard/")
    assert response.status_code == 200
    assert [b.pk for b in response.context["buildings"]] == [world["a"][Building].pk]


def test_foreign_building_dashboard_is_404(client, world, users):
    login_verified(client, users.manager)
    assert client.get(f"/admin/dashboard/{world['b'][Building].pk}/").status_code == 404
    assert client.get("/admin/dashboard/987654/").status_code == 404


def test_dashboard_needs_the_view_building_permission(client, world, users):
    login_verified(client, users.security)
    assert client.get(f"/admin/dashboard/{world['a'][Building].pk}/").status_code == 403
