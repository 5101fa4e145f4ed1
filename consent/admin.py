"""Admin of the consent app: compliance officers see consents, enrolments and deletion receipts
of their companies (read-only), filter them by building, partner and state, and export CSV.

Rows are scoped with `core.portal.isolation` (company_id on the consent). Nothing is edited
here: a revocation by staff goes through `consent.services.consent_revoke` (action, needs the
change permission, which no role but a superuser holds). No personal data is shown: residents
appear by id and pseudonymous subject only.
"""

import csv

from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy, ngettext

from consent.models import Consent, ConsentText, DeletionReceipt, FaceEnrolment
from consent.services import consent_revoke, consent_text_publish
from core.portal.isolation import CompanyScopedAdminMixin
from core.portal.readonly import ReadOnlyAdminMixin
from core.portal.service_forms import ServiceBackedAdminMixin

EXPORT_FIELDS = ("id", "resident_id", "company_id", "building_id", "partner_id", "purpose", "text_sha256",
                 "channel", "granted_at", "retention_until", "revoked_at", "revoked_reason")


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    pass


class StateFilter(admin.SimpleListFilter):
    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", gettext_lazy("active")), ("revoked", gettext_lazy("revoked")),
                ("expired", gettext_lazy("expired, not yet processed"))]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.active(now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, retention_until__lte=now)
        return queryset


@admin.register(Consent)
class ConsentAdmin(CompanyScopedAdminMixin, ReadOnlyAdmin):
    company_path = "company_id"
    list_display = ("id", "resident_id", "building_id", "partner", "purpose", "channel", "granted_at",
                    "retention_until", "revoked_at", "revoked_reason")
    list_filter = (StateFilter, "partner", "building_id", "channel", "revoked_reason")
    search_fields = ("=resident_id", "=text__sha256")
    date_hierarchy = "granted_at"
    readonly_fields = ("resident_id", "company_id", "building_id", "partner", "purpose", "text", "retention_until",
                       "granted_at", "revoked_at", "revoked_reason", "channel", "evidence_ip",
                       "evidence_user_agent_sha256")
    fields = readonly_fields
    actions = ["export_csv", "revoke"]

    @admin.action(description=gettext_lazy("Export selected consents (CSV)"), permissions=["export"])
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="consents.csv"'
        writer = csv.writer(response)
        writer.writerow(EXPORT_FIELDS)
        for consent in queryset.select_related("text"):
            row = {**{f: getattr(consent, f, "") for f in EXPORT_FIELDS}, "text_sha256": consent.text.sha256}
            writer.writerow([row[f] if row[f] is not None else "" for f in EXPORT_FIELDS])
        return response

    def has_export_permission(self, request):
        return request.user.has_perm("consent.export_consent")

    @admin.action(description=gettext_lazy("Revoke selected consents (deletes the faces at the partner)"),
                  permissions=["revoke"])
    def revoke(self, request, queryset):
        count = 0
        for consent in queryset.filter(revoked_at__isnull=True):
            consent_revoke(consent=consent, reason=Consent.RevokedReason.ADMIN, actor=request.user)
            count += 1
        self.message_user(request, ngettext("%(count)s consent revoked.", "%(count)s consents revoked.", count)
                          % {"count": count}, messages.SUCCESS)

    def has_revoke_permission(self, request):
        return request.user.has_perm("consent.change_consent")


@admin.register(FaceEnrolment)
class FaceEnrolmentAdmin(CompanyScopedAdminMixin, ReadOnlyAdmin):
    company_path = "consent__company_id"
    list_display = ("id", "resident_id", "partner", "subject_id", "status", "created_at", "updated_at")
    list_filter = ("status", "partner")
    search_fields = ("=resident_id", "=subject_id")
    fields = ("consent", "partner", "resident_id", "subject_id", "status", "image_sha256", "outbox_message",
              "created_at", "updated_at")
    readonly_fields = fields


@admin.register(DeletionReceipt)
class DeletionReceiptAdmin(ReadOnlyAdmin):
    """Deletion receipts carry no company: compliance officers of every company and superusers see
    them by pseudonymous subject (nothing links them to a resident without the enrolment)."""

    list_display = ("deletion_id", "partner", "subject_id", "confirmed_at")
    list_filter = ("partner",)
    search_fields = ("=subject_id", "=deletion_id")


@admin.register(ConsentText)
class ConsentTextAdmin(ServiceBackedAdminMixin, ReadOnlyAdmin):
    """Consent wordings: published once (add), never changed; the hash is what consents reference.
    A text names its partner (the processor) and, optionally, one management company (the operator)."""

    list_display = ("version", "language", "purpose", "partner", "company_id", "sha256", "created_at")
    list_filter = ("partner", "purpose", "language")
    FIELDS = ("partner", "company_id", "purpose", "version", "language", "body")

    def get_fields(self, request, obj=None):
        return (*self.FIELDS, "sha256", "created_at")

    def get_readonly_fields(self, request, obj=None):
        return (*self.FIELDS, "sha256", "created_at") if obj else ("sha256", "created_at")

    def has_add_permission(self, request, obj=None):
        return request.user.has_perm("consent.add_consenttext")

    def service_save(self, request, current, data: dict, change: bool):
        return consent_text_publish(version=data["version"], body=data["body"], language=data["language"],
                                    partner=data.get("partner"), company_id=data.get("company_id"),
                                    purpose=data["purpose"])
