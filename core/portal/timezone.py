"""The portal shows and reads dates and times in the managers' time zone (PORTAL_TIME_ZONE, default
Europe/Moscow), not in UTC: "valid from 18:00" typed into a guest pass means 18:00 where the
building is. Everything is still stored in UTC (USE_TZ); the API and the logs keep UTC."""

import zoneinfo

from django.conf import settings
from django.utils import timezone

PORTAL_PREFIXES = ("/admin/", "/account/")


class PortalTimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(PORTAL_PREFIXES):
            return self.get_response(request)
        with timezone.override(zoneinfo.ZoneInfo(settings.PORTAL_TIME_ZONE)):
            return self.get_response(request)
