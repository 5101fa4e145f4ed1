"""Admin of the access app: companies, buildings, flats, residents, devices, grants, vehicles.

Every admin is scoped to the caller's management companies (core.portal.isolation) and
writes through access.services (core.portal.service_forms): adding, changing and deleting a row,
and every action. A field whose change would need more than its own row (who holds a grant, which
building a device is in) is read-only once the row exists. Personal data is decrypted for the
staff who may see it; the database cannot search or sort it, so residents and cars are found by
keyed blind indexes of exact values (access.search; docs/portal.md says which).

Security alerts (anomaly detection) are platform security data spanning companies (a partner's
traffic at every company it serves): only security admins and superusers see them, whatever
permissions a user holds; property managers and other staff do not see the list at all.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from access import dashboard
from access.errors import RuleDenied
from access.models import (
    AccessGrant,
    Building,
    Device,
    GuestPass,
    ManagementCompany,
    Residency,
    Resident,
    ResidentSearchTerm,
    SecurityAlert,
    StaffMembership,
    Unit,
    Vehicle,
)
from access.portal import consents as consent_pages
from access.portal import devices as device_pages
from access.portal import residents as resident_pages
from access.portal.labels import (
    current_units,
    flat_label,
    grant_holder_label,
    grant_target_label,
    resident_label,
    schedule_text,
)
from access.reasons import STAFF_DETAILS
from access.search import plate_digest, resident_term_digests
from access.services.companies import (
    building_create,
    building_update,
    company_create,
    company_update,
    staff_membership_create,
    staff_membership_delete,
    unit_create,
    unit_update,
)
from access.services.devices import device_create, device_delete, device_update
from access.services.grants import (
    grant_create,
    grant_delete,
    grant_resume,
    grant_suspend,
    grant_update,
    grants_suspend_for_residents,
)
from access.services.guest_passes import guest_pass_create, guest_pass_revoke
from access.services.residencies import (
    residency_create,
    residency_delete,
    residency_end,
    residency_update,
    residents_move_out,
)
from access.services.residents import resident_create, resident_delete, resident_update
from access.services.vehicles import vehicle_create, vehicle_delete, vehicle_update
from core.portal import auditlog_mask as admin_auditlog
from core.portal import site as admin_site
from core.portal.isolation import CompanyScopedModelAdmin, CompanyScopedTabularInline, request_company_ids
from core.portal.labels import ReturnToNextMixin, safe_next
from core.portal.readonly import ReadOnlyAdminMixin
from core.portal.service_forms import ServiceBackedAdminMixin
from core.security.roles import SECURITY_ADMIN, has_role
from partners.services import partner_reinstate


class ScopedServiceAdmin(ReturnToNextMixin, ServiceBackedAdminMixin, CompanyScopedModelAdmin):
    """A company-scoped admin whose saves go through services (and return to `?next=` once saved)."""

    # fields fixed once the row exists (changing them would move the row to another owner)
    fixed_fields: tuple[str, ...] = ()

    def get_readonly_fields(self, request, obj=None):
        fixed = self.fixed_fields if obj is not None else ()
        return (*super().get_readonly_fields(request, obj), *fixed)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


admin_site.add_view("dashboard/", dashboard.building_list, "dashboard")
admin_site.add_view("dashboard/<int:building_id>/", dashboard.building_dashboard, "building-dashboard")
admin_site.add_view("consents/", consent_pages.consents_overview, "consents")


def several_companies(request) -> bool:
    """True when the caller sees more than one management company (a company column helps then)."""
    ids = request_company_ids(request)
    return ids is None or len(ids) > 1


def link(url: str, text) -> str:
    return format_html('<a href="{}">{}</a>', url, text)


@admin.register(ManagementCompany)
class ManagementCompanyAdmin(ScopedServiceAdmin):
    company_path = "id"
    unscoped_roles = (SECURITY_ADMIN,)  # assigns staff to companies
    list_display = ("name", "building_count", "created_at")
    ordering = ("name",)
    search_fields = ("name",)
    list_filter = ("created_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_buildings=Count("buildings"))

    @admin.display(description=gettext_lazy("buildings"), ordering="_buildings")
    def building_count(self, obj):
        return obj._buildings

    def service_save(self, request, current, data, change):
        if change:
            return company_update(company=current, name=data["name"], actor=request.user)
        return company_create(name=data["name"], actor=request.user)


@admin.register(StaffMembership)
class StaffMembershipAdmin(ScopedServiceAdmin):
    company_path = "company"
    unscoped_roles = (SECURITY_ADMIN,)
    list_display = ("user", "company", "created_at")
    search_fields = ("user__username", "company__name")
    list_filter = ("company",)
    autocomplete_fields = ("user", "company")
    fixed_fields = ("user", "company")  # a membership is added or removed, never moved

    def has_change_permission(self, request, obj=None):
        return False  # a membership is added or removed, never moved to another user or company

    def service_save(self, request, current, data, change):
        if change:
            return current
        return staff_membership_create(user=data["user"], company=data["company"], actor=request.user)

    def delete_model(self, request, obj):
        staff_membership_delete(membership=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("user"):
            staff_membership_delete(membership=membership, actor=request.user)


class DeviceInline(CompanyScopedTabularInline):
    model = Device
    company_path = "building__company"
    fields = ("name", "kind", "partner", "partner_device_ref", "online", "last_seen_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # devices are added on their own page (through device_create)


@admin.register(Building)
class BuildingAdmin(ScopedServiceAdmin):
    company_path = "company"
    list_display = ("name", "address", "company", "devices_online", "devices_offline", "dashboard")
    ordering = ("company__name", "name")
    search_fields = ("name", "address")
    list_filter = ("company", "timezone")
    autocomplete_fields = ("company",)
    fixed_fields = ("company",)
    inlines = (DeviceInline,)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("company")
            .annotate(
                _online=Count("devices", filter=Q(devices__online=True)),
                _offline=Count("devices", filter=Q(devices__online=False)),
            )
        )

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if several_companies(request) else tuple(f for f in shown if f != "company")

    @admin.display(description=gettext_lazy("devices online"), ordering="_online")
    def devices_online(self, obj):
        return obj._online

    @admin.display(description=gettext_lazy("devices offline"), ordering="_offline")
    def devices_offline(self, obj):
        return obj._offline

    @admin.display(description=gettext_lazy("dashboard"))
    def dashboard(self, obj):
        return link(reverse("admin:building-dashboard", args=[obj.pk]), _("open"))

    def service_save(self, request, current, data, change):
        if change:
            return building_update(building=current, name=data["name"], address=data["address"],
                                   timezone=data["timezone"], actor=request.user)
        return building_create(
            company=data["company"], name=data["name"], address=data["address"],
            timezone=data["timezone"], actor=request.user,
        )


@admin.register(Unit)
class UnitAdmin(ScopedServiceAdmin):
    company_path = "building__company"
    list_display = ("number", "building")
    search_fields = ("number", "building__name")
    list_filter = ("building",)
    autocomplete_fields = ("building",)
    fixed_fields = ("building",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("building")

    def choice_label(self, unit):
        return flat_label(unit)

    def service_save(self, request, current, data, change):
        if change:
            return unit_update(unit=current, number=data["number"], actor=request.user)
        return unit_create(building=data["building"], number=data["number"], actor=request.user)


class ResidencyInline(CompanyScopedTabularInline):
    model = Residency
    company_path = "unit__building__company"
    fields = ("unit", "kind", "valid_from", "valid_until")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # through residency_create on the residency page


class GrantInline(CompanyScopedTabularInline):
    """The resident's personal grants (changed on the grant's own page, through grant_update)."""

    model = AccessGrant
    fk_name = "resident"
    company_path = ("building__company", "device__building__company")
    fields = ("building", "device", "valid_from", "valid_until", "schedule", "suspended")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # through grant_create on the grant page (link on the resident page)


class VehicleInline(CompanyScopedTabularInline):
    model = Vehicle
    company_path = "resident__company"
    fields = ("plate", "label", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Resident)
class ResidentAdmin(ScopedServiceAdmin):
    """Residents: found by name, phone, e-mail, flat or a car's plate (blind indexes of exact
    values, access.search); each has a page (`<id>/card/`) with everything about them."""

    company_path = "company"
    list_display = ("card_link", "phone", "current_flats", "vehicle_count", "status", "company")
    list_display_links = None
    sortable_by = ("status", "company")  # encrypted columns do not sort
    search_fields = ("=id", "user__username", "residencies__unit__number")
    search_help_text = gettext_lazy("Full name or a surname, phone, e-mail, flat number or a car's plate")
    list_filter = ("company", "suspended", "residencies__unit__building")
    autocomplete_fields = ("company",)
    inlines = (ResidencyInline, GrantInline, VehicleInline)
    actions = ("suspend_grants", "move_out")

    def get_queryset(self, request):
        return (super().get_queryset(request).select_related("company")
                .prefetch_related("residencies__unit__building").annotate(_vehicles=Count("vehicles", distinct=True))
                .order_by("id"))  # a GROUP BY query drops Meta.ordering (the autocomplete pages it)

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if several_companies(request) else tuple(f for f in shown if f != "company")

    def choice_label(self, resident):
        return resident_label(resident)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/card/", wrap(lambda request, object_id: resident_pages.resident_card(
                self, request, object_id)), name="access_resident_card"),
            path("<path:object_id>/consents/<int:consent_id>/receipt/",
                 wrap(lambda request, object_id, consent_id: resident_pages.consent_receipt_download(
                     self, request, object_id, consent_id)), name="access_resident_consent_receipt"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        resident = self.get_object(request, object_id)
        extra = {"subtitle": resident.full_name} if resident is not None else {}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def response_add(self, request, obj, post_url_continue=None):
        response = super().response_add(request, obj, post_url_continue)
        if response.status_code == 302 and not safe_next(request) and not any(
                key in request.POST for key in ("_continue", "_addanother")):
            return redirect("admin:access_resident_card", obj.pk)  # a new resident: their page
        return response

    def delete_model(self, request, obj):
        resident_delete(resident=obj, actor=request.user)  # consents revoked, allowlists patched

    def get_deleted_objects(self, objs, request):
        """A resident's guest passes go with them (resident_delete); the portal never deletes a pass
        on its own (only revokes), so that missing permission does not stop the resident's deletion."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(GuestPass._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def get_fields(self, request, obj=None):
        fields = ["company", "full_name", "phone", "email", "suspended"]
        return fields if obj is None else [*fields, "app_user", "grant_link"]

    def get_readonly_fields(self, request, obj=None):
        return ("app_user", "grant_link") if obj is None else ("company", "app_user", "grant_link")

    @admin.display(description=gettext_lazy("resident"))
    def card_link(self, obj):
        return link(reverse("admin:access_resident_card", args=[obj.pk]), obj.full_name)

    @admin.display(description=gettext_lazy("app account"))
    def app_user(self, obj):
        return obj.user.get_username() if obj and obj.user_id else "—"

    @admin.display(description=gettext_lazy("grants"))
    def grant_link(self, obj):
        add = reverse("admin:access_accessgrant_add") + f"?resident={obj.pk}"
        listing = reverse("admin:access_accessgrant_changelist") + f"?resident__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a> · <a href="{}">{}</a>', add, _("add a grant"), listing,
                           _("all grants"))

    @admin.display(description=gettext_lazy("flats"))
    def current_flats(self, obj):
        return ", ".join(flat_label(unit) for unit in current_units(obj)) or "—"

    @admin.display(description=gettext_lazy("cars"), ordering="_vehicles")
    def vehicle_count(self, obj):
        return obj._vehicles

    @admin.display(description=gettext_lazy("status"), ordering="suspended")
    def status(self, obj):
        if obj.suspended:
            return format_html('<span class="state-offline">{}</span>', _("suspended"))
        return _("active")

    def get_search_results(self, request, queryset, search_term):
        """Django's own fields (id, app user, flat number) or, by blind index (access.search), every
        name word / the phone / the e-mail of the term, or the plate of one of the resident's cars."""
        found, _duplicates = super().get_search_results(request, queryset, search_term)
        if not search_term:
            return found, False
        ids = set(found.values_list("pk", flat=True))
        digests = resident_term_digests(search_term)
        if digests:
            matching = (
                ResidentSearchTerm.objects.filter(digest__in=digests).values("resident_id")
                .annotate(hits=Count("digest", distinct=True)).filter(hits=len(digests)).values("resident_id")
            )
            ids |= set(queryset.filter(pk__in=matching).values_list("pk", flat=True))
        plate = plate_digest(search_term)
        if plate is not None:
            owners = Vehicle.objects.filter(plate_index=plate).values("resident_id")
            ids |= set(queryset.filter(pk__in=owners).values_list("pk", flat=True))
        return queryset.filter(pk__in=ids), False

    def service_save(self, request, current, data, change):
        fields = {name: data[name] for name in ("full_name", "phone", "email", "suspended") if name in data}
        if change:
            return resident_update(resident=current, actor=request.user, **fields)
        return resident_create(company=data["company"], actor=request.user, **fields)

    @admin.action(description=gettext_lazy("Suspend all grants of the selected residents"), permissions=["change"])
    def suspend_grants(self, request, queryset):
        count = grants_suspend_for_residents(residents=queryset, actor=request.user)
        self.message_user(request, ngettext("%(count)s grant suspended.", "%(count)s grants suspended.", count)
                          % {"count": count}, messages.SUCCESS)

    @admin.action(
        description=gettext_lazy("Move out: end current residencies today and suspend personal grants"),
        permissions=["change"],
    )
    def move_out(self, request, queryset):
        outcome = residents_move_out(residents=queryset, actor=request.user)
        for residency, reasons in outcome.refused:
            self.message_user(request, f"{residency}: {'; '.join(reasons)}", messages.ERROR)
        self.message_user(
            request, _("Residencies ended: %(ended)s; personal grants suspended: %(suspended)s.")
            % {"ended": outcome.ended, "suspended": outcome.grants_suspended},
            messages.SUCCESS,
        )


@admin.register(Residency)
class ResidencyAdmin(ScopedServiceAdmin):
    company_path = "unit__building__company"
    list_display = ("resident_name", "flat", "kind", "valid_from", "valid_until")
    search_fields = ("=id", "unit__number", "unit__building__name")
    list_filter = ("kind", "unit__building", "valid_from", "valid_until")
    autocomplete_fields = ("resident", "unit")
    fixed_fields = ("resident", "unit")
    actions = ("end_residency",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("unit__building", "resident")

    def choice_label(self, residency):
        return _("%(resident)s, %(flat)s") % {"resident": residency.resident.full_name,
                                               "flat": flat_label(residency.unit)}

    @admin.display(description=gettext_lazy("resident"))
    def resident_name(self, obj):
        return link(reverse("admin:access_resident_card", args=[obj.resident_id]), obj.resident.full_name)

    @admin.display(description=gettext_lazy("flat"), ordering="unit__number")
    def flat(self, obj):
        return flat_label(obj.unit)

    def service_save(self, request, current, data, change):
        if change:  # a move-out date set here is a move-out (residency_update)
            return residency_update(residency=current, kind=data["kind"], valid_from=data["valid_from"],
                                    valid_until=data.get("valid_until"), actor=request.user)
        return residency_create(
            resident=data["resident"], unit=data["unit"], kind=data["kind"],
            valid_from=data.get("valid_from"), valid_until=data.get("valid_until"), actor=request.user,
        )

    def delete_model(self, request, obj):
        residency_delete(residency=obj, actor=request.user)

    @admin.action(description=gettext_lazy("Revoke access on move-out (end today, end its grants)"),
                  permissions=["change"])
    def end_residency(self, request, queryset):
        count = 0
        for residency in queryset:
            try:
                residency_end(residency=residency, actor=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{residency}: {'; '.join(exc.messages)}", messages.ERROR)
                continue
            count += 1
        self.message_user(request, ngettext("%(count)s residency ended with its grants.",
                                            "%(count)s residencies ended with their grants.", count)
                          % {"count": count}, messages.SUCCESS)


@admin.register(Device)
class DeviceAdmin(ScopedServiceAdmin):
    """Devices with their live state and last event; each has a page (`<id>/card/`: the contract
    that covers it, its timeline, the remote open for a courier or a visitor)."""

    company_path = "building__company"
    list_display = ("card_link", "kind", "building", "state", "last_event", "partner")
    list_display_links = None
    search_fields = ("name", "partner_device_ref", "building__name")
    list_filter = ("kind", "online", "building", "partner")
    autocomplete_fields = ("building", "partner")
    readonly_fields = ("online", "last_seen_at")
    fixed_fields = ("building", "partner", "kind")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("building", "partner")

    def choice_label(self, device):
        return _("%(device)s (%(building)s)") % {"device": device.name, "building": device.building.name}

    def get_changelist_instance(self, request):
        """The page's devices get their last event in one query (device_rows), not one per row."""
        changelist = super().get_changelist_instance(request)
        for row in device_pages.device_rows(request, list(changelist.result_list)):
            row["device"].last_row = row["last"]
        return changelist

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/card/", wrap(lambda request, object_id: device_pages.device_card(
                self, request, object_id)), name="access_device_card"),
            path("<path:object_id>/open/", wrap(lambda request, object_id: device_pages.device_open(
                self, request, object_id)), name="access_device_open"),
            *super().get_urls(),
        ]

    @admin.display(description=gettext_lazy("device"), ordering="name")
    def card_link(self, obj):
        return link(reverse("admin:access_device_card", args=[obj.pk]), obj.name)

    @admin.display(description=gettext_lazy("state"), ordering="online")
    def state(self, obj):
        seen = timezone.localtime(obj.last_seen_at).strftime("%d.%m %H:%M") if obj.last_seen_at else "—"
        if obj.online:
            return format_html('<span class="state-online">● {}</span>', _("online"))
        return format_html('<span class="state-offline">● {}</span><br><span class="quiet">{} {}</span>',
                           _("offline"), _("last seen"), seen)

    @admin.display(description=gettext_lazy("last event"))
    def last_event(self, obj):
        row = getattr(obj, "last_row", None)
        if row is None:
            return "—"
        return format_html('<span class="tone-{}">{}</span><br><span class="quiet">{}</span>', row.tone,
                           row.what, row.when.strftime("%d.%m %H:%M"))

    def service_save(self, request, current, data, change):
        if change:
            return device_update(device=current, name=data["name"], partner_device_ref=data["partner_device_ref"],
                                 actor=request.user)
        return device_create(
            building=data["building"], kind=data["kind"], name=data["name"], partner=data["partner"],
            partner_device_ref=data["partner_device_ref"], actor=request.user,
        )

    def delete_model(self, request, obj):
        device_delete(device=obj, actor=request.user)


@admin.register(AccessGrant)
class AccessGrantAdmin(ScopedServiceAdmin):
    company_path = ("building__company", "device__building__company")
    list_display = ("holder", "target", "schedule_text", "valid_from", "valid_until", "suspended")
    search_fields = ("=id", "=resident__id", "building__name", "device__name")
    list_filter = ("suspended", "building", "device", "valid_until")
    autocomplete_fields = ("resident", "residency", "building", "device")
    readonly_fields = ("created_by", "created_at")
    fixed_fields = ("resident", "residency", "building", "device")
    actions = ("suspend_grants", "resume_grants")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related(
            "building", "device__building", "resident", "residency__resident", "residency__unit__building",
        ).prefetch_related("resident__residencies__unit__building", "residency__resident__residencies__unit__building")

    @admin.display(description=gettext_lazy("holder"))
    def holder(self, obj):
        return link(reverse("admin:access_resident_card", args=[obj.holder_resident_id]), grant_holder_label(obj))

    @admin.display(description=gettext_lazy("where"))
    def target(self, obj):
        return grant_target_label(obj)

    @admin.display(description=gettext_lazy("when"))
    def schedule_text(self, obj):
        return schedule_text(obj.schedule)

    def service_save(self, request, current, data, change):
        if change:
            return grant_update(grant=current, valid_from=data["valid_from"], valid_until=data.get("valid_until"),
                                schedule=data.get("schedule"), suspended=data.get("suspended", False),
                                actor=request.user)
        return grant_create(
            resident=data.get("resident"), residency=data.get("residency"), building=data.get("building"),
            device=data.get("device"), valid_from=data.get("valid_from"), valid_until=data.get("valid_until"),
            schedule=data.get("schedule"), actor=request.user,
        )

    @admin.action(description=gettext_lazy("Suspend selected grants"), permissions=["change"])
    def suspend_grants(self, request, queryset):
        count = 0
        for grant in queryset.filter(suspended=False):
            grant_suspend(grant=grant, actor=request.user)
            count += 1
        self.message_user(request, ngettext("%(count)s grant suspended.", "%(count)s grants suspended.", count)
                          % {"count": count}, messages.SUCCESS)

    @admin.action(description=gettext_lazy("Resume selected grants"), permissions=["change"])
    def resume_grants(self, request, queryset):
        count = 0
        for grant in queryset.filter(suspended=True):
            grant_resume(grant=grant, actor=request.user)
            count += 1
        self.message_user(request, ngettext("%(count)s grant resumed.", "%(count)s grants resumed.", count)
                          % {"count": count}, messages.SUCCESS)

    def delete_model(self, request, obj):
        grant_delete(grant=obj, actor=request.user)  # audited, allowlists patched


@admin.register(Vehicle)
class VehicleAdmin(ScopedServiceAdmin):
    """Cars, shown with their owner's name and flat; found by plate (blind index)."""

    company_path = "resident__company"
    list_display = ("plate", "label", "owner", "owner_flats", "created_at")
    sortable_by = ("label", "created_at")
    search_fields = ("=id", "label", "=resident__id")
    search_help_text = gettext_lazy("Licence plate (Cyrillic or Latin letters), or the car's label")
    list_filter = ("resident__company", "created_at")
    autocomplete_fields = ("resident",)
    fields = ("resident", "plate", "label")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("resident").prefetch_related(
            "resident__residencies__unit__building")

    def get_list_filter(self, request):
        shown = super().get_list_filter(request)
        return shown if several_companies(request) else [f for f in shown if "company" not in str(f)]

    def get_readonly_fields(self, request, obj=None):
        return ("resident",) if obj is not None else ()

    @admin.display(description=gettext_lazy("owner"))
    def owner(self, obj):
        return link(reverse("admin:access_resident_card", args=[obj.resident_id]), obj.resident.full_name)

    @admin.display(description=gettext_lazy("flat"))
    def owner_flats(self, obj):
        return ", ".join(flat_label(unit) for unit in current_units(obj.resident)) or "—"

    def get_search_results(self, request, queryset, search_term):
        """Django's own fields (id, label, resident id) or the plate by blind index (access.search)."""
        found, duplicates = super().get_search_results(request, queryset, search_term)
        digest = plate_digest(search_term) if search_term else None
        if digest is None:
            return found, duplicates
        return queryset.filter(Q(pk__in=found.values("pk")) | Q(plate_index=digest)), False

    def service_save(self, request, current, data, change):
        if change:
            return vehicle_update(vehicle=current, plate=data["plate"], label=data.get("label", ""),
                                  actor=request.user)
        return vehicle_create(
            resident=data["resident"], plate=data["plate"], label=data.get("label", ""), actor=request.user
        )

    def delete_model(self, request, obj):
        vehicle_delete(vehicle=obj, actor=request.user)


class GuestPassStateFilter(admin.SimpleListFilter):
    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(GuestPass.State.ACTIVE, _("active")), (GuestPass.State.SCHEDULED, _("not started yet")),
                ("ended", _("ended (used, expired or revoked)"))]

    def queryset(self, request, queryset):
        now = timezone.now()
        live = Q(revoked_at__isnull=True, used_at__isnull=True)
        if self.value() == GuestPass.State.ACTIVE:
            return queryset.filter(live, valid_from__lte=now, valid_until__gt=now)
        if self.value() == GuestPass.State.SCHEDULED:
            return queryset.filter(live, valid_from__gt=now)
        if self.value() == "ended":
            return queryset.exclude(live & Q(valid_until__gt=now))
        return queryset


@admin.register(GuestPass)
class GuestPassAdmin(ScopedServiceAdmin):
    """Guest passes: a car of a resident's guest let through one barrier for a while (or once).

    Created here for a resident (access.services.guest_passes.guest_pass_create: the resident must
    be allowed at the barrier, the limits of the app apply), revoked by the action or the button
    on the resident's page; never edited or deleted - a pass is evidence of who let whom in."""

    company_path = "device__building__company"
    list_display = ("plate", "resident_name", "device", "valid_from", "valid_until", "one_time", "state_text")
    list_filter = (GuestPassStateFilter, "device", "one_time")
    search_fields = ("=resident__id", "label")
    autocomplete_fields = ("resident", "device")
    fields = ("resident", "device", "plate", "label", "valid_from", "valid_until", "one_time")
    readonly_fields = ("used_at", "revoked_at", "created_at")
    actions = ("revoke_passes",)
    date_hierarchy = "valid_from"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("resident", "device__building")

    def get_fields(self, request, obj=None):
        return self.fields if obj is None else (*self.fields, *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else (*self.fields, *self.readonly_fields)

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request):
        return request.user.has_perm("access.change_guestpass")

    def get_field_queryset(self, db, db_field, request):
        queryset = super().get_field_queryset(db, db_field, request)
        if db_field.name == "device" and queryset is not None:
            return queryset.filter(kind=Device.Kind.BARRIER)
        return queryset

    def get_urls(self):
        revoke = self.admin_site.admin_view(self.revoke_view)
        return [path("<int:object_id>/revoke/", revoke, name="access_guestpass_revoke"), *super().get_urls()]

    @admin.display(description=gettext_lazy("resident"))
    def resident_name(self, obj):
        return link(reverse("admin:access_resident_card", args=[obj.resident_id]), obj.resident.full_name)

    @admin.display(description=gettext_lazy("state"))
    def state_text(self, obj):
        state = obj.state()
        tone = {GuestPass.State.ACTIVE: "ok", GuestPass.State.REVOKED: "denied"}.get(state, "info")
        return format_html('<span class="tone-{}">{}</span>', tone, GuestPass.State(state).label)

    def service_save(self, request, current, data, change):
        if change:
            return current  # passes are never edited (revoke and create another)
        try:
            return guest_pass_create(
                resident=data["resident"], device=data["device"], plate=data["plate"], label=data.get("label", ""),
                valid_from=data.get("valid_from"), valid_until=data.get("valid_until"),
                one_time=data.get("one_time", False), actor=request.user,
            )
        except RuleDenied as exc:
            raise ValidationError({"resident": str(STAFF_DETAILS.get(exc.code, exc.code))}) from None

    @admin.action(description=gettext_lazy("Revoke selected guest passes"), permissions=["revoke"])
    def revoke_passes(self, request, queryset):
        count = 0
        for guest_pass in queryset.filter(revoked_at__isnull=True):
            guest_pass_revoke(guest_pass=guest_pass, actor=request.user)
            count += 1
        self.message_user(request, ngettext("%(count)s guest pass revoked.", "%(count)s guest passes revoked.",
                                            count) % {"count": count}, messages.SUCCESS)

    def revoke_view(self, request, object_id):
        """POST from a resident's page: revoke one pass, then go back (`next`) or to the list."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        guest_pass = self._object_or_404(request, str(object_id))
        guest_pass_revoke(guest_pass=guest_pass, actor=request.user)
        self.message_user(request, _("Guest pass for %(plate)s revoked.") % {"plate": guest_pass.plate},
                          messages.SUCCESS)
        return redirect(safe_next(request) or reverse("admin:access_guestpass_changelist"))


def _is_security_admin(request) -> bool:
    return request.user.is_superuser or has_role(request.user, SECURITY_ADMIN)


@admin.register(SecurityAlert)
class SecurityAlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only list of security alerts; the one action reinstates the selected alerts' partners, and
    so does the "Reinstate partner" button on an alert's detail page (POST to <id>/reinstate/).

    Visible to security admins and superusers only (see the module docstring). Alerts cannot be
    added, changed or deleted here: they are evidence. "Reinstate partner" calls
    `partners.services.partner_reinstate`, which checks the role again, lifts the suspension,
    resolves the partner's open alerts and records `security.partner_reinstated`.
    """

    list_display = ("created_at", "partner", "kind", "scope", "observed", "threshold", "window_s",
                    "partner_suspended", "partner_suspended_now", "reinstated")
    list_filter = ("kind", "partner", "partner_suspended", ("resolved_at", admin.EmptyFieldListFilter))
    list_select_related = ("partner",)
    search_fields = ("=scope",)
    date_hierarchy = "created_at"
    fields = ("created_at", "partner", "kind", "scope", "observed", "threshold", "window_s", "partner_suspended",
              "partner_suspended_now", "resolved_at", "resolved_by")
    readonly_fields = fields
    actions = ("reinstate_partners",)

    def has_module_permission(self, request):
        return _is_security_admin(request)

    def has_view_permission(self, request, obj=None):
        return _is_security_admin(request)

    def has_reinstate_permission(self, request):
        return _is_security_admin(request)

    @admin.display(description=gettext_lazy("suspended now"), boolean=True)
    def partner_suspended_now(self, obj):
        return obj.partner.suspended_at is not None

    @admin.display(description=gettext_lazy("reinstated"), ordering="resolved_at")
    def reinstated(self, obj):
        return timezone.localtime(obj.resolved_at).strftime("%Y-%m-%d %H:%M") if obj.resolved_at else "—"

    @admin.action(
        description=gettext_lazy("Reinstate partner of the selected alerts (lift suspension, resolve alerts)"),
        permissions=["reinstate"],
    )
    def reinstate_partners(self, request, queryset):
        self._reinstate(request, {alert.partner for alert in queryset.select_related("partner")})

    def _reinstate(self, request, partners) -> None:
        done = []
        for partner in sorted(partners, key=lambda p: p.pk):
            try:
                partner_reinstate(partner=partner, actor=request.user)
            except PermissionDenied as error:
                self.message_user(request, str(error), messages.ERROR)
                return
            done.append(str(partner))
        self.message_user(
            request, _("%(count)s partner(s) reinstated: %(partners)s. They may now fetch new tokens.")
            % {"count": len(done), "partners": ", ".join(done)}, messages.SUCCESS,
        )

    def get_urls(self):
        reinstate = self.admin_site.admin_view(self.reinstate_view)
        return [path("<int:object_id>/reinstate/", reinstate, name="access_securityalert_reinstate"),
                *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The detail page offers "Reinstate partner" while the alert is open or its partner suspended."""
        alert = self.get_object(request, object_id)
        offer = (alert is not None and self.has_reinstate_permission(request)
                 and (alert.resolved_at is None or alert.partner.suspended_at is not None))
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "offer_reinstate": offer})

    def reinstate_view(self, request, object_id):
        """POST from the alert's detail page: reinstate that alert's partner (same service as the action)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_reinstate_permission(request):
            raise PermissionDenied
        alert = get_object_or_404(SecurityAlert.objects.select_related("partner"), pk=object_id)
        self._reinstate(request, {alert.partner})
        return redirect("admin:access_securityalert_change", alert.pk)


# The admin audit trail (django-auditlog): who changed what, when, with encrypted values masked.
for _model in (ManagementCompany, StaffMembership, Building, Unit, Resident, Residency, Device, AccessGrant, Vehicle):
    admin_auditlog.register(_model)

