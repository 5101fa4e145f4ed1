"""A resident's page: flats, grants and their schedules, cars, guest passes, consents (states
only, never biometric data), what apps above this one add (identity: invitations), and a readable
timeline of the resident's access events. Mounted by access.admin.ResidentAdmin under its URLs,
so the resident is looked up in the admin's company-scoped queryset (another company's: 404)."""

import json
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from access.models import AccessGrant, GuestPass
from access.portal.devices import before_cursor, timeline_context
from access.portal.labels import flat_label, grant_target_label, schedule_text
from access.portal.objects import viewable_object
from access.selectors.timeline import resident_events
from consent.models import Consent
from consent.receipts import consent_receipt
from consent.selectors import consent_list, deletion_receipts_for, enrolment_list

EXPIRING_SOON_DAYS = 30


@dataclass
class ResidentSection:
    """A part of the resident's page an app above access adds: its template and context."""

    template: str
    context: dict


# Providers (request, resident) -> ResidentSection | None, registered by apps above access.
_sections: list[Callable] = []


def add_resident_section(provider: Callable) -> None:
    if provider not in _sections:
        _sections.append(provider)


def grant_state(grant: AccessGrant, now) -> tuple[str, str]:
    """(text, tone) of a grant now."""
    if grant.suspended:
        return _("suspended"), "denied"
    if grant.valid_from > now:
        return _("starts later"), "info"
    if grant.valid_until is not None and grant.valid_until <= now:
        return _("ended"), "info"
    if grant.residency_id and not grant.residency.is_current():
        return _("moved out"), "info"
    return _("active"), "ok"


def consent_state(consent: Consent, now) -> tuple[str, str]:
    if consent.revoked_at is not None:
        return _("revoked"), "denied"
    if consent.retention_until <= now:
        return _("expired"), "info"
    if (consent.retention_until - now).days < EXPIRING_SOON_DAYS:
        return _("active, expires soon"), "problem"
    return _("active"), "ok"


def may_see_consents(request) -> bool:
    return request.user.has_perm("consent.view_consent_status") or request.user.has_perm("consent.view_consent")


def resident_card(model_admin, request, object_id):
    resident = viewable_object(model_admin, request, object_id)
    now = timezone.now()
    grants = list(
        AccessGrant.objects.held_by(resident.pk)
        .select_related("building", "device__building", "residency__unit__building").order_by("-valid_from")
    )
    passes = list(GuestPass.objects.filter(resident=resident).select_related("device__building")
                  .order_by("-created_at")[:20])
    consents, receipts, enrolments = [], [], []
    if may_see_consents(request):
        consents = [{"consent": c, "state": consent_state(c, now)} for c in consent_list(resident_id=resident.pk)]
        receipts = list(deletion_receipts_for(resident_id=resident.pk).select_related("partner"))
        enrolments = enrolment_list(resident_id=resident.pk)
    user = request.user
    sections = [section for provider in _sections if (section := provider(request, resident)) is not None]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": resident.full_name,
        "opts": model_admin.model._meta,
        "resident": resident,
        "residencies": [{"residency": r, "flat": flat_label(r.unit), "current": r.is_current()}
                        for r in resident.residencies.select_related("unit__building")],
        "grants": [{"grant": g, "target": grant_target_label(g), "schedule": schedule_text(g.schedule),
                    "state": grant_state(g, now)} for g in grants],
        "vehicles": list(resident.vehicles.all()),
        "passes": [{"pass": p, "state": p.state(now)} for p in passes],
        "show_consents": may_see_consents(request),
        "consents": consents,
        "deletion_receipts": receipts,
        "enrolments": enrolments,
        "sections": sections,
        "can_change": model_admin.has_change_permission(request, resident),
        "can_add_vehicle": user.has_perm("access.add_vehicle"),
        "can_add_grant": user.has_perm("access.add_accessgrant"),
        "can_add_pass": user.has_perm("access.add_guestpass"),
        "can_revoke_pass": user.has_perm("access.change_guestpass"),
        **timeline_context(resident_events(resident=resident, before=before_cursor(request)), request=request,
                           company_ids={resident.company_id}),
    }
    return TemplateResponse(request, "admin/portal/resident_card.html", context)


def consent_receipt_download(model_admin, request, object_id, consent_id: int):
    """The signed receipt of one of the resident's consents (JSON: pseudonymous refs only)."""
    resident = viewable_object(model_admin, request, object_id)
    if not may_see_consents(request):
        raise PermissionDenied
    consent = consent_list(resident_id=resident.pk).filter(pk=consent_id).first()
    if consent is None:
        raise Http404("No such consent.")
    response = HttpResponse(json.dumps(consent_receipt(consent=consent), ensure_ascii=False, indent=2),
                            content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="consent-{consent.pk}-receipt.json"'
    return response
