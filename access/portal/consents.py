"""Consents at a glance: per building and partner how many residents consented to face
recognition, how many consents expire soon and how many were revoked; the lists behind those
numbers. States and dates only - never the evidence (address, device) or anything biometric.
Scoped to the caller's companies (consents carry their company); needs
`consent.view_consent_status` (property managers) or `consent.view_consent` (compliance)."""

from datetime import timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _

from access.models import Building, Resident
from access.portal.labels import resident_label
from access.portal.residents import EXPIRING_SOON_DAYS, may_see_consents
from consent.models import Consent
from core.portal.isolation import request_company_ids, scope_to_companies
from partners.models import Partner

RECENT_DAYS = 30
LIST_LIMIT = 100


def consents_overview(request):
    if not may_see_consents(request):
        raise PermissionDenied
    now = timezone.now()
    soon, recent = now + timedelta(days=EXPIRING_SOON_DAYS), now - timedelta(days=RECENT_DAYS)
    consents = scope_to_companies(Consent.objects.all(), "company_id", request_company_ids(request))
    active = Q(revoked_at__isnull=True, retention_until__gt=now)
    rows = list(
        consents.values("building_id", "partner_id").annotate(
            active=Count("id", filter=active),
            expiring=Count("id", filter=active & Q(retention_until__lte=soon)),
            revoked_recently=Count("id", filter=Q(revoked_at__gte=recent)),
            ended=Count("id", filter=Q(revoked_at__isnull=False) | Q(retention_until__lte=now)),
        ).order_by("building_id", "partner_id")
    )
    buildings = Building.objects.in_bulk({row["building_id"] for row in rows if row["building_id"]})
    partners = Partner.objects.in_bulk({row["partner_id"] for row in rows})
    for row in rows:
        building = buildings.get(row["building_id"])
        row["building"] = building.name if building else _("any building of the company")
        row["partner"] = partners[row["partner_id"]].name
    expiring = list(consents.filter(active, retention_until__lte=soon).select_related("partner")
                    .order_by("retention_until")[:LIST_LIMIT])
    revoked = list(consents.filter(revoked_at__gte=recent).select_related("partner")
                   .order_by("-revoked_at")[:LIST_LIMIT])
    residents = Resident.objects.prefetch_related("residencies__unit__building").in_bulk(
        {c.resident_id for c in [*expiring, *revoked]})
    see_names = request.user.has_perm("access.view_resident")

    def who(consent):
        resident = residents.get(consent.resident_id)
        return {"id": consent.resident_id, "label": resident_label(resident) if resident and see_names else None,
                "exists": resident is not None}

    context = {
        **admin.site.each_context(request),
        "title": _("Consents to face recognition"),
        "rows": rows,
        "totals": {key: sum(row[key] for row in rows) for key in ("active", "expiring", "revoked_recently")},
        "expiring": [{"consent": c, "resident": who(c)} for c in expiring],
        "revoked": [{"consent": c, "resident": who(c)} for c in revoked],
        "soon_days": EXPIRING_SOON_DAYS,
        "recent_days": RECENT_DAYS,
    }
    return TemplateResponse(request, "admin/portal/consents.html", context)
