"""Admin of the partners app: partner organisations, contracts, credentials (fingerprints only).

A property manager sees the partners their company has contracts with, their own contracts,
and the fingerprints of those partners' credentials; rotation goes through
partners.services.partner_credentials_rotate. Secrets are never rendered, not even after a
rotation: the page shows the new version's fingerprints, the new material reaches the partner
as a file encrypted to its own key (partner_credentials_export), and the previous plate-token
key is retired by its own action once the partner has switched (partner_plate_key_retire).
The security admin sees every partner and can suspend or reinstate one
(partners.services.partner_suspend / partner_reinstate).
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from core.portal import auditlog_mask as admin_auditlog
from core.portal.isolation import CompanyScopedModelAdmin, CompanyScopedTabularInline
from core.portal.service_forms import ServiceBackedAdminMixin
from core.security.roles import SECURITY_ADMIN
from partners import services
from partners.key_material import spoken
from partners.models import Partner, PartnerContract, PartnerCredentials

OPERATION_NAMES = {"open": gettext_lazy("remote opening"), "video": gettext_lazy("video"),
                   "face": gettext_lazy("face recognition"), "plate": gettext_lazy("plate recognition")}
FINGERPRINTS = (
    "client_secret_fingerprint",
    "plate_token_key_fingerprint",
    "subject_key_fingerprint",
    "webhook_secret_fingerprint",
    "partner_public_key_fingerprint",
    "client_cert_fingerprint",
    "outbound_webhook_secret_fingerprint",
)


def fingerprint_column(name: str, description):
    return admin.display(description=description)(lambda self, obj: getattr(obj, name))


class FingerprintColumns:
    """The credentials' fingerprints as labelled columns (the model's properties carry no label)."""

    client_secret_fingerprint = fingerprint_column("client_secret_fingerprint",
                                                   gettext_lazy("client secret fingerprint"))
    plate_token_key_fingerprint = fingerprint_column("plate_token_key_fingerprint",
                                                     gettext_lazy("plate token key fingerprint"))
    subject_key_fingerprint = fingerprint_column("subject_key_fingerprint",
                                                 gettext_lazy("subject key fingerprint"))
    webhook_secret_fingerprint = fingerprint_column("webhook_secret_fingerprint",
                                                    gettext_lazy("webhook secret fingerprint"))
    partner_public_key_fingerprint = fingerprint_column("partner_public_key_fingerprint",
                                                        gettext_lazy("partner public key fingerprint"))
    outbound_webhook_secret_fingerprint = fingerprint_column("outbound_webhook_secret_fingerprint",
                                                             gettext_lazy("outbound webhook secret fingerprint"))


class CredentialsInline(FingerprintColumns, CompanyScopedTabularInline):
    """Credential history of a partner: versions and fingerprints, never the secrets."""

    model = PartnerCredentials
    company_path = "partner__contracts__company"
    unscoped_roles = (SECURITY_ADMIN,)
    fields = ("version", "client_id", "created_at", "revoked_at", "plate_token_key_fingerprint",
              "webhook_secret_fingerprint")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Partner)
class PartnerAdmin(ServiceBackedAdminMixin, CompanyScopedModelAdmin):
    company_path = "contracts__company"
    unscoped_roles = (SECURITY_ADMIN,)  # suspends any partner: a platform-wide security action
    list_display = ("name", "slug", "active", "suspended_at", "api_base_url")
    search_fields = ("name", "slug")
    list_filter = ("active", "suspended_at")
    readonly_fields = ("suspended_at", "created_at")
    inlines = (CredentialsInline,)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    actions = ("suspend_partners", "reinstate_partners")

    @admin.action(description=gettext_lazy("Suspend selected partners (every call refused)"), permissions=["change"])
    def suspend_partners(self, request, queryset):
        for partner in queryset:
            services.partner_suspend(partner=partner, reason="admin", actor=request.user)
        self.message_user(request, _("Partners suspended: %(count)s.") % {"count": queryset.count()},
                          messages.WARNING)

    @admin.action(description=gettext_lazy("Reinstate selected partners"), permissions=["change"])
    def reinstate_partners(self, request, queryset):
        try:
            for partner in queryset:
                services.partner_reinstate(partner=partner, actor=request.user)
        except PermissionDenied as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, _("Partners reinstated: %(count)s.") % {"count": queryset.count()},
                          messages.SUCCESS)

    def service_save(self, request, current, data, change):
        if change:
            fields = {name: data[name] for name in services.PARTNER_FIELDS if name in data}
            return services.partner_update(partner=current, actor=request.user, **fields)
        return services.partner_create(
            name=data["name"], slug=data["slug"], api_base_url=data["api_base_url"],
            audit_log_url=data.get("audit_log_url", ""), actor=request.user,
        )


@admin.register(PartnerContract)
class PartnerContractAdmin(ServiceBackedAdminMixin, CompanyScopedModelAdmin):
    company_path = "company"
    list_display = ("agreement_ref", "partner", "company", "operations", "valid_from", "valid_until", "active")
    search_fields = ("agreement_ref", "partner__name", "purpose")
    list_filter = ("partner", "company", "allows_open", "allows_video", "allows_face", "allows_plate", "valid_until")
    autocomplete_fields = ("company", "buildings")

    def get_readonly_fields(self, request, obj=None):
        fixed = ("partner", "company") if obj is not None else ()  # a contract never changes hands
        return ("subcontracting_forbidden", "created_at", *fixed)
    fieldsets = (
        (None, {"fields": ("partner", "company", "buildings", "valid_from", "valid_until")}),
        (gettext_lazy("Allowed operations"), {"fields": ("allows_open", "allows_video", "allows_face",
                                                           "allows_plate")}),
        (gettext_lazy("Data processing terms"), {"fields": ("purpose", "retention_days", "subcontracting_forbidden",
                                               "agreement_ref", "created_at")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("partner", "company")

    @admin.display(description=gettext_lazy("operations"))
    def operations(self, obj):
        return ", ".join(str(OPERATION_NAMES[op]) for op in OPERATION_NAMES if obj.allows(op)) or "—"

    @admin.display(description=gettext_lazy("active"), boolean=True)
    def active(self, obj):
        return obj.is_active()

    def service_save(self, request, current, data, change):
        if change:
            terms = {name: data[name] for name in services.CONTRACT_TERMS if name in data}
            return services.partner_contract_update(contract=current, buildings=data.get("buildings", []),
                                                    actor=request.user, **terms)
        return services.partner_contract_create(
            partner=data["partner"], company=data["company"], buildings=data.get("buildings", []),
            purpose=data["purpose"], retention_days=data["retention_days"], agreement_ref=data["agreement_ref"],
            allows_open=data.get("allows_open", False), allows_video=data.get("allows_video", False),
            allows_face=data.get("allows_face", False), allows_plate=data.get("allows_plate", False),
            valid_from=data.get("valid_from"), valid_until=data.get("valid_until"), actor=request.user,
        )

    def save_related(self, request, form, formsets, change):
        # the services set the buildings with the contract (and react to them): nothing left to save
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj):
        services.partner_contract_delete(contract=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for contract in queryset:
            services.partner_contract_delete(contract=contract, actor=request.user)


@admin.register(PartnerCredentials)
class PartnerCredentialsAdmin(FingerprintColumns, CompanyScopedModelAdmin):
    company_path = "partner__contracts__company"
    list_display = ("partner", "version", "client_id", "current", "created_at", "revoked_at",
                    "plate_token_key_fingerprint", "webhook_secret_fingerprint", "plate_key_status")
    search_fields = ("partner__name", "client_id")
    list_filter = ("partner", "revoked_at", "created_at")
    fields = ("partner", "version", "client_id", "created_at", "revoked_at", "revoked_without_grace", "allowed_cidrs",
              "handed_over_at", "plate_key_status", *FINGERPRINTS)
    readonly_fields = fields
    actions = ("rotate_credentials", "rotate_credentials_emergency", "export_key_material", "retire_previous_plate_key")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("partner")

    @admin.display(description=gettext_lazy("current"), boolean=True)
    def current(self, obj):
        return obj.is_current

    @admin.display(description=gettext_lazy("plate-token key"))
    def plate_key_status(self, obj):
        if obj.is_current:
            return _("in use")
        until = obj.plate_key_accepted_until()
        if until is not None and until > timezone.now():
            return _("still accepted until %(until)s") % {"until": f"{timezone.localtime(until):%Y-%m-%d %H:%M}"}
        return _("retired")

    def has_add_permission(self, request):
        return False  # a new version is issued by rotation

    def has_delete_permission(self, request, obj=None):
        return False  # history is kept

    def has_change_permission(self, request, obj=None):
        # Rows are read-only; the change permission only unlocks the rotation action.
        return obj is None and super().has_change_permission(request, obj)

    @admin.action(
        description=gettext_lazy("Rotate credentials of the selected partners (new version, old one revoked)"),
        permissions=["change"],
    )
    def rotate_credentials(self, request, queryset):
        self._rotate(request, queryset, emergency=False)

    @admin.action(
        description=gettext_lazy(
            "Emergency rotation: rotate now and revoke the previous secrets at once (no grace period)"),
        permissions=["change"],
    )
    def rotate_credentials_emergency(self, request, queryset):
        self._rotate(request, queryset, emergency=True)

    def _rotate(self, request, queryset, *, emergency: bool):
        partners = {credentials.partner for credentials in queryset.select_related("partner")}
        for partner in sorted(partners, key=lambda p: p.pk):
            issued = services.partner_credentials_rotate(partner=partner, emergency=emergency, actor=request.user)
            new = issued.credentials
            previous = (
                _("Previous secrets revoked at once: the partner's events fail until it has the new webhook secret.")
                + " " if emergency else ""
            )
            self.message_user(
                request,
                _("%(partner)s: version %(version)s issued %(issued)s; plate-token key %(plate_key)s, webhook secret "
                  "%(webhook)s, outbound webhook secret %(outbound)s, client secret %(client)s. ") % {
                    "partner": partner, "version": new.version,
                    "issued": f"{timezone.localtime(new.created_at):%Y-%m-%d %H:%M}",
                    "plate_key": new.plate_token_key_fingerprint, "webhook": new.webhook_secret_fingerprint,
                    "outbound": new.outbound_webhook_secret_fingerprint, "client": new.client_secret_fingerprint,
                } + previous + _("The secrets themselves are never shown here; they reach the partner out of band."),
                messages.WARNING if emergency else messages.SUCCESS,
            )
            self.message_user(request, self._next_steps(partner), messages.INFO)

    @staticmethod
    def _next_steps(partner) -> str:
        steps = _("Next: export the key material for %(partner)s (action \"Export key material\"), send "
                        "the file and read the fingerprints aloud to the partner.") % {"partner": partner}
        previous = PartnerCredentials.objects.plate_keys_in_overlap().filter(partner=partner).first()
        if previous is None:
            return steps + " " + _("No previous plate-token key is accepted any more: the partner's cars are "
                                         "recognised once it uses the new key.")
        return steps + " " + _(
            "The previous plate-token key %(fingerprint)s is accepted until %(until)s at the latest; retire it "
            "(action \"Retire the previous plate-token key\") once the partner's barriers use the new one."
        ) % {"fingerprint": spoken(previous.plate_token_key_fingerprint),
             "until": f"{timezone.localtime(previous.plate_key_accepted_until()):%Y-%m-%d %H:%M}"}

    @admin.action(description=gettext_lazy("Export key material for the partner (a file only its private key opens)"),
                  permissions=["change"])
    def export_key_material(self, request, queryset):
        partners = {credentials.partner for credentials in queryset.select_related("partner")}
        if len(partners) != 1:
            self.message_user(request, _("Select the credentials of one partner to export."), messages.ERROR)
            return None
        partner = partners.pop()
        try:
            export = services.partner_credentials_export(partner=partner, actor=request.user)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return None
        fingerprints = export.fingerprints
        self.message_user(request, _(
            "%(partner)s: key material of version %(version)s exported, encrypted to the partner's key. "
            "Read aloud and compare with the partner: plate-token key %(plate)s, webhook secret %(webhook)s, "
            "outbound webhook secret %(outbound)s, client secret %(client)s."
        ) % {"partner": partner, "version": export.credentials.version,
             "plate": spoken(fingerprints["plate_token_key"]), "webhook": spoken(fingerprints["webhook_secret"]),
             "outbound": spoken(fingerprints["outbound_webhook_secret"]),
             "client": spoken(fingerprints["client_secret"])}, messages.SUCCESS)
        response = HttpResponse(export.jwe, content_type="application/jose")
        response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
        return response  # the admin marks every response no-store

    @admin.action(description=gettext_lazy("Retire the previous plate-token key (end the rotation's overlap)"),
                  permissions=["change"])
    def retire_previous_plate_key(self, request, queryset):
        partners = {credentials.partner for credentials in queryset.select_related("partner")}
        for partner in sorted(partners, key=lambda p: p.pk):
            try:
                retired = services.partner_plate_key_retire(partner=partner, actor=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{partner}: {' '.join(exc.messages)}", messages.ERROR)
                continue
            if not retired:
                self.message_user(request, _("%(partner)s: no previous plate-token key is in use.")
                                  % {"partner": partner}, messages.INFO)
                continue
            self.message_user(request, ngettext(
                "%(partner)s: plate-token key %(fingerprints)s retired; plate tokens under it are now unknown.",
                "%(partner)s: plate-token keys %(fingerprints)s retired; plate tokens under them are now unknown.",
                len(retired),
            ) % {"partner": partner, "fingerprints": ", ".join(spoken(c.plate_token_key_fingerprint) for c in retired)},
                messages.SUCCESS)


for _model in (Partner, PartnerContract, PartnerCredentials):
    admin_auditlog.register(_model)

from partners import admin_outbox  # noqa: F401,E402
