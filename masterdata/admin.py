"""The admin's spreadsheet import and export (masterdata.services.imports, masterdata.resources).

- /admin/masterdata/import/ - choose the company, the shape and the file (CSV or XLSX), optionally
  invite new residents; the answer is the preview: every row checked and dry-run, with its errors;
- /admin/masterdata/import/<id>/confirm/ (POST) - apply the previewed file; .../abandon/ forgets it;
- /admin/masterdata/export/ - the same shapes as a file, for offline editing and re-import;
- "Spreadsheet imports" - the list of past imports of the caller's companies (read only), with
  buttons to import and export.

The pages are admin pages (verified second factor); every company a form offers is one the
caller works for, and the services check it again.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from access.models import ManagementCompany
from core.portal import site as admin_site
from core.portal.isolation import CompanyScopedModelAdmin, request_company_ids
from core.portal.readonly import ReadOnlyAdminMixin
from identity.models import Invitation
from masterdata.models import SpreadsheetImport
from masterdata.resources import FORMATS, RESOURCES, blank_dataset, export_rows
from masterdata.selectors import export_queryset
from masterdata.services.imports import check_may_import, import_abandon, import_confirm, import_preview

PREVIEW_ROWS = 200  # rows shown in the preview (every error row is counted; the first ones shown)


def _companies(request):
    ids = request_company_ids(request)
    companies = ManagementCompany.objects.order_by("name")
    return companies if ids is None else companies.filter(pk__in=ids)


class ImportForm(forms.Form):
    company = forms.ModelChoiceField(queryset=ManagementCompany.objects.none(), label=gettext_lazy("Company"))
    shape = forms.ChoiceField(choices=SpreadsheetImport.Shape.choices, label=gettext_lazy("What the file holds"))
    file = forms.FileField(label=gettext_lazy("CSV or XLSX file"))
    invite = forms.ChoiceField(
        required=False, label=gettext_lazy("Invite new residents"),
        choices=[("", gettext_lazy("no")), (Invitation.Channel.SMS, gettext_lazy("by SMS")),
                 (Invitation.Channel.EMAIL, gettext_lazy("by e-mail"))],
    )

    def __init__(self, *args, request, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["company"].queryset = _companies(request)

    def file_format(self) -> str:
        name = self.cleaned_data["file"].name.lower()
        for extension in FORMATS:
            if name.endswith(f".{extension}"):
                return extension
        raise ValidationError(_("Upload a .csv or .xlsx file."))


class ExportForm(forms.Form):
    company = forms.ModelChoiceField(queryset=ManagementCompany.objects.none(), label=gettext_lazy("Company"))
    shape = forms.ChoiceField(choices=SpreadsheetImport.Shape.choices, label=gettext_lazy("What to export"))
    file_format = forms.ChoiceField(choices=[("xlsx", "XLSX"), ("csv", "CSV")], label=gettext_lazy("Format"))
    blank = forms.BooleanField(required=False, label=gettext_lazy("Only the header row (a template to fill in)"))

    def __init__(self, *args, request, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["company"].queryset = _companies(request)


class InMemoryUpload(MemoryFileUploadHandler):
    """Keeps the uploaded spreadsheet in memory whatever its size (its limit is the body limit of
    /admin/masterdata/import/): the rows hold names and phones, never written to a temp file."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.activated = True


def _context(request, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, **extra}


@csrf_exempt  # the upload handler must be set before the CSRF check reads the form: checked below
def import_view(request):
    request.upload_handlers = [InMemoryUpload(request)]
    return _import_view(request)


@csrf_protect
def _import_view(request):
    form = ImportForm(request.POST or None, request.FILES or None, request=request)
    if request.method == "POST" and form.is_valid():
        try:
            pending, outcome = import_preview(
                user=request.user, company=form.cleaned_data["company"], shape=form.cleaned_data["shape"],
                data=form.cleaned_data["file"].read(), file_format=form.file_format(),
                file_name=form.cleaned_data["file"].name, invite_channel=form.cleaned_data["invite"],
            )
        except PermissionDenied:
            form.add_error("company", _("You may not import into this management company."))
        except ValidationError as invalid:
            form.add_error("file", invalid)
        else:
            shown = [row for row in outcome.rows if row.status == "error"][:PREVIEW_ROWS]
            shown += [row for row in outcome.rows if row.status != "error"][:max(0, PREVIEW_ROWS - len(shown))]
            return TemplateResponse(request, "admin/masterdata/preview.html", _context(
                request, _("Check the import"), pending=pending, outcome=outcome, counts=outcome.counts,
                rows=sorted(shown, key=lambda row: row.row), hidden=len(outcome.rows) - len(shown),
            ))
    return TemplateResponse(request, "admin/masterdata/import.html",
                            _context(request, _("Import a spreadsheet"), form=form))


def confirm_view(request, import_id: int):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    pending = get_object_or_404(SpreadsheetImport, pk=import_id, created_by=request.user)
    if "abandon" in request.POST:
        import_abandon(user=request.user, pending=pending)
        messages.info(request, _("The import was abandoned; nothing was changed."))
        return redirect("admin:masterdata_spreadsheetimport_changelist")
    try:
        outcome = import_confirm(user=request.user, pending=pending)
    except (PermissionDenied, ValidationError) as refused:
        messages.error(request, " ".join(getattr(refused, "messages", [str(refused)])))
        return redirect("admin:masterdata_spreadsheetimport_changelist")
    counts = outcome.counts
    messages.success(request, _("Imported: %(new)d new, %(update)d changed, %(unchanged)d unchanged, %(error)d rows "
                                "with errors left out; %(invited)d invitations sent.")
                     % {**counts, "invited": outcome.invited})
    return redirect("admin:masterdata_spreadsheetimport_change", pending.pk)


def export_view(request):
    form = ExportForm(request.GET or None, request=request)
    if request.GET and form.is_valid():
        company, shape = form.cleaned_data["company"], form.cleaned_data["shape"]
        try:
            check_may_import(user=request.user, company=company, shape=shape)
        except PermissionDenied:
            form.add_error("company", _("You may not export this management company's rows."))
        else:
            file_format = form.cleaned_data["file_format"]
            if form.cleaned_data["blank"]:
                exported = FORMATS[file_format]().export_data(blank_dataset(shape))
                body = exported.encode() if isinstance(exported, str) else exported
            else:
                body = export_rows(shape, export_queryset(shape=shape, company=company), file_format)
            response = HttpResponse(body, content_type=FORMATS[file_format].CONTENT_TYPE)
            response["Content-Disposition"] = f'attachment; filename="{shape}-{company.pk}.{file_format}"'
            response["Cache-Control"] = "no-store"
            return response
    return TemplateResponse(request, "admin/masterdata/export.html",
                            _context(request, _("Export a spreadsheet"), form=form, shapes=RESOURCES))


admin_site.add_view("masterdata/import/", import_view, "masterdata-import")
admin_site.add_view("masterdata/import/<int:import_id>/confirm/", confirm_view, "masterdata-import-confirm")
admin_site.add_view("masterdata/export/", export_view, "masterdata-export")


@admin.register(SpreadsheetImport)
class SpreadsheetImportAdmin(ReadOnlyAdminMixin, CompanyScopedModelAdmin):
    """Past imports of the caller's companies: who, when, what, the counts (never the file)."""

    company_path = "company"
    list_display = ("__str__", "company", "shape", "file_name", "status", "rows", "created_by", "created_at")
    list_filter = ("company", "shape", "status")
    fields = ("company", "shape", "file_name", "file_format", "status", "rows", "counts", "invite_channel",
              "created_by", "created_at", "applied_at")
    readonly_fields = fields

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff and (
            request.user.has_perm("access.add_resident") or request.user.has_perm("access.add_building")
            or request.user.has_perm("access.add_device") or super().has_view_permission(request, obj))

    def has_module_permission(self, request):
        return self.has_view_permission(request)
