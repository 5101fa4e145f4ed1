"""Admin of the audit log: read-only events and checkpoints, export and reconciliation pages.

Everything is scoped by management company through `core.security.tenancy`. The export page needs
the permission `audit.export_auditevent` (compliance officers and property managers: their own
companies' events, which they may view anyway, with the proof); reconciliation is for compliance
officers only. Both call the same services as the API.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit import conf, signing
from audit.api import CONTENT_TYPES
from audit.forms import ExportForm, ReconcileForm
from audit.models import AuditCheckpoint, AuditEvent, AuditRefusal
from audit.reconcile import audit_reconcile, partner_entries_from_text
from audit.selectors import event_list, logs_for_companies, refusals_for_user, seal_latest_verified, unsealed_count
from audit.services import audit_export_start
from core.portal.readonly import ReadOnlyAdminMixin
from core.security.identifiers import user_ref
from core.security.roles import COMPLIANCE_OFFICER, has_role
from core.security.tenancy import company_ids_for_user


def _is_compliance(request) -> bool:
    return has_role(request.user, COMPLIANCE_OFFICER)


def _may_export(request) -> bool:
    return request.user.has_perm("audit.export_auditevent")


def scope_choices(user) -> tuple[list, list]:
    """(buildings, partners) the export form offers `user`: settings.AUDIT_SCOPE_CHOICES."""
    provider = conf.scope_choices_provider()
    return import_string(provider)(user) if provider else ([], [])


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    def has_view_permission(self, request, obj=None):
        return _is_compliance(request) or super().has_view_permission(request, obj)

    def has_module_permission(self, request):
        return _is_compliance(request) or super().has_module_permission(request)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "occurred_at", "action", "outcome", "actor_kind", "actor_ref", "object_ref",
                    "partner_id", "company_id", "building_id", "request_id", "origin_request_id", "http_status",
                    "latency_ms")
    list_filter = ("action", "outcome", "actor_kind")
    search_fields = ("=request_id", "=origin_request_id", "=object_ref")
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    change_list_template = "audit/event_change_list.html"

    def get_queryset(self, request):
        return event_list(user=request.user)

    def get_urls(self):
        own = [
            path("export/", self.admin_site.admin_view(self.export_view), name="audit_export"),
            path("reconcile/", self.admin_site.admin_view(self.reconcile_view), name="audit_reconcile"),
        ]
        return own + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra = {"public_key_pem": signing.public_key_pem(), "key_id": signing.key_id(signing.public_key()),
                 "is_compliance": _is_compliance(request), "may_export": _may_export(request)}
        return super().changelist_view(request, {**(extra_context or {}), **extra})

    def export_view(self, request):
        if not _may_export(request):
            raise PermissionDenied
        buildings, partners = scope_choices(request.user)
        form = ExportForm(request.POST or None, buildings=buildings, partners=partners)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            since, until = form.period()
            stream, filename = audit_export_start(
                user=request.user, actor_ref=user_ref(request.user), fmt=data["format"],
                since=since, until=until, building_id=data["building"],
                partner_id=data["partner"], action=data["action"] or None, outcome=data["outcome"] or None,
            )
            response = StreamingHttpResponse(stream, content_type=CONTENT_TYPES[data["format"]])
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
        context = {**self.admin_site.each_context(request), "title": _("Export the audit log"), "form": form,
                   "opts": self.model._meta}
        return TemplateResponse(request, "audit/export.html", context)

    def reconcile_view(self, request):
        if not _is_compliance(request):
            raise PermissionDenied
        form = ReconcileForm(request.POST or None, request.FILES or None)
        report = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            name, text = data["partner_log"]
            try:
                entries = partner_entries_from_text(text, name=name)
            except (ValueError, KeyError) as exc:
                form.add_error("partner_log", _("unreadable partner log: %(error)s") % {"error": exc})
            else:
                report = audit_reconcile(
                    partner_entries=entries, partner_id=data["partner"], since=data["since"],
                    until=data["until"], skew_threshold_s=data["skew_threshold_s"],
                    actor_ref=user_ref(request.user),
                )
                if data["csv"]:
                    response = HttpResponse(report.to_csv(), content_type="text/csv; charset=utf-8")
                    response["Content-Disposition"] = 'attachment; filename="audit-differences.csv"'
                    return response
                level = messages.SUCCESS if report.clean else messages.WARNING
                messages.add_message(request, level, _("Reconciliation: %(summary)s") % {"summary": report.summary()})
        context = {**self.admin_site.each_context(request), "title": _("Reconcile with a partner's log"),
                   "form": form, "report": report, "opts": self.model._meta,
                   "differences": report.differences[:500] if report else []}
        return TemplateResponse(request, "audit/reconcile.html", context)


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("log", "tree_size", "first_position", "seal_id", "root_hash", "signed_at", "key_id_short",
                    "verified")
    change_list_template = "audit/checkpoint_change_list.html"

    def get_queryset(self, request):
        companies = company_ids_for_user(request.user)
        logs = logs_for_companies(None if companies is None else frozenset(companies))
        return super().get_queryset(request).filter(log__in=logs).select_related("log").defer("leaf_hashes")

    @admin.display(description=gettext_lazy("key id"))
    def key_id_short(self, obj):
        return obj.key_id[:16]

    @admin.display(boolean=True, description=gettext_lazy("verified"))
    def verified(self, obj):
        latest = getattr(self, "_latest_verified", None)
        return bool(latest and obj.seal_id <= latest[0])

    def changelist_view(self, request, extra_context=None):
        self._latest_verified = seal_latest_verified()
        keys = [{"key_id": key_id, "pem": signing.public_key_pem(key)} for key_id, key in signing.keyring().items()]
        extra = {"latest_verified": self._latest_verified, "unsealed": unsealed_count(),
                 "public_key_pem": signing.public_key_pem(), "key_id": signing.key_id(signing.public_key()),
                 "retired_keys": keys[1:]}
        return super().changelist_view(request, {**(extra_context or {}), **extra})


@admin.register(AuditRefusal)
class AuditRefusalAdmin(ReadOnlyAdmin):
    """Refused partner calls per minute, source and reason (a flood is one row with a count)."""

    list_display = ("minute", "source", "reason", "count", "partner_id", "source_ip", "last_at")
    list_filter = ("reason",)
    search_fields = ("=source", "=source_ip")
    date_hierarchy = "minute"

    def get_queryset(self, request):
        return refusals_for_user(request.user)
