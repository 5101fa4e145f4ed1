"""The portal reads and shows dates and times in the managers' time zone (PORTAL_TIME_ZONE,
Moscow by default): "18:00" typed into a guest pass is 18:00 where the building is. The data
stays in UTC, and the API keeps UTC."""

import datetime
import os
import subprocess
import sys
import zoneinfo

import pytest
from django.utils import timezone

from access.models import Device, GuestPass, Resident
from core.portal.timezone import PortalTimeZoneMiddleware
from tests.admin.conftest import login_verified
from tests.translations import ROOT

MOSCOW = zoneinfo.ZoneInfo("Europe/Moscow")


@pytest.mark.django_db
@pytest.mark.language("ru")
def test_a_guest_pass_typed_in_moscow_time_is_stored_in_utc(client, world, users):
    login_verified(client, users.manager)
    resident, barrier = world["a"][Resident], world["a"][Device]
    start = (timezone.now() + datetime.timedelta(days=1)).astimezone(MOSCOW).replace(hour=18, minute=0, second=0,
                                                                                      microsecond=0)
    form = {"resident": resident.pk, "device": barrier.pk, "plate": "о 001 оо 77", "label": "курьер",
            "valid_from_0": start.strftime("%d.%m.%Y"), "valid_from_1": "18:00:00",
            "valid_until_0": start.strftime("%d.%m.%Y"), "valid_until_1": "21:00:00"}
    response = client.post("/admin/access/guestpass/add/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    created = GuestPass.objects.latest("id")
    assert created.valid_from == start  # an aware moment: 15:00 UTC
    assert created.valid_from.astimezone(datetime.UTC).hour == 15


@pytest.mark.parametrize(("path", "zone"), [("/admin/access/guestpass/", "Europe/Moscow"),
                                            ("/account/login/", "Europe/Moscow"), ("/api/v1/devices", "UTC"),
                                            ("/partner/v1/access-decisions", "UTC")])
def test_only_the_portal_runs_in_the_managers_time_zone(rf, path, zone):
    seen = []
    middleware = PortalTimeZoneMiddleware(lambda request: seen.append(timezone.get_current_timezone_name()))
    middleware(rf.get(path))
    assert seen == [zone]
    assert timezone.get_current_timezone_name() == "UTC"  # nothing leaks past the request


def test_an_unknown_time_zone_stops_the_start():
    env = {**os.environ, "PORTAL_TIME_ZONE": "Europe/Atlantis", "DJANGO_SETTINGS_MODULE": "smarthome.settings"}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "PORTAL_TIME_ZONE is not an IANA time zone: 'Europe/Atlantis'" in result.stderr
