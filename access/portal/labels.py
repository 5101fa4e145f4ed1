"""Human labels of the portal: residents by name and flat, grants by holder and target, weekly
schedules in words.

Names are decrypted here, for staff pages that show them anyway; a model's `__str__` stays
"Resident #12" (it reaches logs and the admin's change history, which must not hold names).
"""

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from access.models import AccessGrant, Device, Resident, Unit
from access.schedules import DAYS

DAY_NAMES = {
    "mon": gettext_lazy("Mon"), "tue": gettext_lazy("Tue"), "wed": gettext_lazy("Wed"),
    "thu": gettext_lazy("Thu"), "fri": gettext_lazy("Fri"), "sat": gettext_lazy("Sat"),
    "sun": gettext_lazy("Sun"),
}


def flat_label(unit: Unit) -> str:
    return _("%(building)s, flat %(number)s") % {"building": unit.building.name, "number": unit.number}


def current_units(resident: Resident, on=None) -> list[Unit]:
    """The resident's flats today (uses a prefetched `residencies__unit__building` when there is one)."""
    on = on or timezone.localdate()
    return [residency.unit for residency in resident.residencies.all() if residency.is_current(on)]


def resident_label(resident: Resident | None) -> str:
    """"Иванов Иван Иванович, Дом 1, кв. 12" - the name and the current flats."""
    if resident is None:
        return "—"
    flats = ", ".join(flat_label(unit) for unit in current_units(resident))
    return f"{resident.full_name}, {flats}" if flats else resident.full_name


def device_label(device: Device) -> str:
    return _("%(device)s (%(building)s)") % {"device": device.name, "building": device.building.name}


def grant_target_label(grant: AccessGrant) -> str:
    if grant.building_id:
        return _("%(building)s, every door and barrier") % {"building": grant.building.name}
    return device_label(grant.device)


def grant_holder_label(grant: AccessGrant) -> str:
    if grant.resident_id:
        return resident_label(grant.resident)
    return _("%(resident)s (while living in %(flat)s)") % {
        "resident": resident_label(grant.residency.resident), "flat": flat_label(grant.residency.unit),
    }


def schedule_text(schedule) -> str:
    """"Mon–Fri 07:00–23:00; Sat, Sun 10:00–20:00" - days with the same windows grouped; an empty
    schedule is "any time", a day left out has no window."""
    if not schedule:
        return _("any time")
    windows = {day: ", ".join(f"{start}–{end}" for start, end in schedule.get(day, [])) for day in DAYS}
    groups: list[tuple[list[str], str]] = []
    for day in DAYS:
        if not windows[day]:
            continue
        if groups and groups[-1][1] == windows[day] and DAYS.index(groups[-1][0][-1]) == DAYS.index(day) - 1:
            groups[-1][0].append(day)
        else:
            groups.append(([day], windows[day]))
    if not groups:
        return _("never")
    parts = []
    for days, text in groups:
        if len(days) > 2:
            span = f"{DAY_NAMES[days[0]]}–{DAY_NAMES[days[-1]]}"
        else:
            span = ", ".join(str(DAY_NAMES[day]) for day in days)
        parts.append(f"{span} {text}")
    return "; ".join(parts)
