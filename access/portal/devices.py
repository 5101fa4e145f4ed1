"""A device's page (live state, the contract that covers it, its timeline) and the remote open
for a courier or a visitor. Mounted by access.admin.DeviceAdmin under its own URLs, so the
object is looked up in the admin's company-scoped queryset: another company's device is a 404."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from access.errors import OpenInProgress, RuleDenied, StaffOpenRateExceeded
from access.models import Device, OpenRequest
from access.portal.forms import StaffOpenForm
from access.portal.objects import viewable_object
from access.portal.timeline import describe
from access.reasons import STAFF_DETAILS
from access.selectors.timeline import PAGE_SIZE, device_events, last_events, ref_names
from access.services.opening import STAFF_OPEN_KINDS, staff_device_open
from core.http.client_ip import client_ip
from core.portal.isolation import request_company_ids
from partners.client import PartnerUnavailableProblem
from partners.models import PartnerContract


def before_cursor(request):
    """The timeline page asked for: (occurred_at, id) of the last row of the previous page, or None."""
    at, _sep, event_id = request.GET.get("before", "").partition("_")
    moment = parse_datetime(at) if at else None
    if moment is None or not event_id.isdigit():
        return None
    return moment, int(event_id)


def device_kinds_of(events) -> dict:
    """{(building id, device ref): kind} of the devices the events happened at."""
    keys = {(event.building_id, event.device_ref) for event in events if event.device_ref}
    condition = Q(pk__in=[])
    for building_id, ref in keys:
        condition |= Q(building_id=building_id, partner_device_ref=ref)
    return {(b, r): kind for b, r, kind in
            Device.objects.filter(condition).values_list("building_id", "partner_device_ref", "kind")}


def timeline_context(events, *, request, company_ids, device_kinds=None) -> dict:
    """Rows of one timeline page and the link to the next (older) one."""
    page, older = events[:PAGE_SIZE], len(events) > PAGE_SIZE
    if device_kinds is None:
        device_kinds = device_kinds_of(page)
    names = ref_names(events=page, company_ids=company_ids,
                      with_residents=request.user.has_perm("access.view_resident"))
    rows = [describe(event, names=names, device_kinds=device_kinds) for event in page]
    cursor = f"{page[-1].occurred_at.isoformat()}_{page[-1].pk}" if older else ""
    return {"rows": rows, "older_cursor": cursor}


def may_open(request, device: Device) -> bool:
    return device.kind in STAFF_OPEN_KINDS and request.user.has_perm("access.open_device")


def device_card(model_admin, request, object_id):
    """GET: the device's state, last event, contracts, the open form and its timeline."""
    device = viewable_object(model_admin, request, object_id)
    company_ids = {device.building.company_id}
    events = device_events(device=device, before=before_cursor(request))
    contracts = list(
        PartnerContract.objects.active().filter(partner_id=device.partner_id, buildings__id=device.building_id)
        .order_by("-valid_from")
    )
    kinds = {(device.building_id, device.partner_device_ref): device.kind}
    last = last_events(devices=[device]).get(device.pk)
    last_row = None
    if last is not None:
        names = ref_names(events=[last], company_ids=company_ids,
                          with_residents=request.user.has_perm("access.view_resident"))
        last_row = describe(last, names=names, device_kinds=kinds)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": device.name,
        "subtitle": device.building.name,
        "opts": model_admin.model._meta,
        "device": device,
        "last_row": last_row,
        "contracts": contracts,
        "open_contract": next((c for c in contracts if c.allows_open), None),
        "open_form": StaffOpenForm() if may_open(request, device) else None,
        "can_change": model_admin.has_change_permission(request, device),
        "now": timezone.now(),
        **timeline_context(events, request=request, company_ids=company_ids, device_kinds=kinds),
    }
    return TemplateResponse(request, "admin/portal/device_card.html", context)


def device_open(model_admin, request, object_id):
    """POST from the device's page: open it (access.services.opening.staff_device_open), say how it
    went, and go back to the page."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    device = viewable_object(model_admin, request, object_id)
    if not may_open(request, device):
        raise PermissionDenied
    back = reverse("admin:access_device_card", args=[device.pk])
    form = StaffOpenForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose who is at the door, then press Open."))
        return redirect(back)
    try:
        outcome = staff_device_open(actor=request.user, device=device, reason=form.cleaned_data["reason"],
                                    idempotency_key=form.cleaned_data["token"], source_ip=client_ip(request))
    except StaffOpenRateExceeded as exc:
        messages.error(request, _("Too many remote opens in a row; try again in %(seconds)s s.")
                       % {"seconds": exc.retry_after})
    except RuleDenied as exc:
        messages.error(request, str(STAFF_DETAILS.get(exc.code, exc.code)))
    except OpenInProgress:
        messages.warning(request, _("This open is still being sent to the partner."))
    except PartnerUnavailableProblem:
        messages.error(request, _("The partner's platform does not answer; nothing was opened. Try again in a minute."))
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        result = outcome.request.result
        if result == OpenRequest.Result.OPENED:
            messages.success(request, _("%(device)s is open.") % {"device": device.name})
        elif result == OpenRequest.Result.OFFLINE:
            messages.error(request, _("%(device)s is offline; nothing was opened.") % {"device": device.name})
        else:
            messages.error(request, _("The partner refused to open %(device)s.") % {"device": device.name})
    return redirect(back)


def device_rows(request, devices: list[Device]) -> list[dict]:
    """The device list's live columns: state, last seen and the last event, in one query each."""
    latest = last_events(devices=devices)
    names = ref_names(events=list(latest.values()), company_ids=request_company_ids(request) or set(),
                      with_residents=request.user.has_perm("access.view_resident"))
    kinds = {(d.building_id, d.partner_device_ref): d.kind for d in devices}
    return [{"device": d, "last": describe(latest[d.pk], names=names, device_kinds=kinds) if d.pk in latest else None}
            for d in devices]
