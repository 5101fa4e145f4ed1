"""Weekly schedules of access grants: {"mon": [["07:00", "23:00"]], ...}.

A day that is absent has no window; an empty schedule ({} or None) means "at any time".
Windows are local times of the building ("HH:MM", start < end, "24:00" allowed as an end).
"""

import datetime
import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


def validate_weekly_schedule(value) -> None:
    if value in (None, {}):
        return
    if not isinstance(value, dict):
        raise ValidationError(gettext("schedule must be an object of weekdays"), code="schedule_type")
    for day, windows in value.items():
        if day not in DAYS:
            raise ValidationError(gettext("unknown weekday %(day)s (use %(days)s)") % {"day": repr(day),
                                  "days": ", ".join(DAYS)}, code="schedule_day")
        if not isinstance(windows, list):
            raise ValidationError(gettext("%(day)s: a list of [start, end] windows is expected") % {"day": day},
                                  code="schedule_windows")
        for window in windows:
            if (
                not isinstance(window, list | tuple)
                or len(window) != 2
                or not all(isinstance(t, str) and _TIME.match(t) for t in window)
            ):
                raise ValidationError(gettext('%(day)s: each window is ["HH:MM", "HH:MM"]') % {"day": day},
                                      code="schedule_window")
            start, end = window
            if start == "24:00" or start >= end:
                raise ValidationError(gettext("%(day)s: window %(start)s-%(end)s must start before it ends")
                                      % {"day": day, "start": start, "end": end}, code="schedule_order")


def schedule_allows(schedule, local_time: datetime.datetime) -> bool:
    """True if `local_time` (already in the building's time zone) falls in a window."""
    if not schedule:
        return True
    hhmm = local_time.strftime("%H:%M")
    return any(start <= hhmm < end for start, end in schedule.get(DAYS[local_time.weekday()], []))
