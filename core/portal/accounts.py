"""Admin pages of staff accounts, role groups and second factors, under `core.security.staff_policy`.

- Users: a superuser is changed (any field, password, deletion) by superusers only; nobody edits
  their own groups, staff or active status; superuser status and single permissions are for
  superusers to grant. Forbidden fields are read-only; a forbidden object is view-only (its
  change, password and delete pages answer 403). The change and password pages run inside
  `account_change`, which re-checks what actually changed and announces it for the audit log.
- Groups: role groups are defined in code (`core.security.role_permissions`): name and
  permissions read-only, never deleted. Other groups are edited by superusers, audited.
- TOTP devices and backup codes: listed without any secret (no key, no QR code, no codes); only a
  superuser changes or removes another staff member's device. Devices are added on the
  two-factor pages (enrolment, "generate backup codes"), never here.
"""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.utils.translation import gettext_lazy

from core.auth.otp import otp_device_delete, otp_device_save
from core.security.staff_changes import (
    account_change,
    announce,
    announce_account,
    group_change,
    group_delete,
    is_role_group,
    staff_user_delete,
)
from core.security.staff_policy import StaffChange, may_change


class DeletesThroughService:
    """ModelAdmin mixin: single and bulk deletes both go through `delete_through_service`."""

    def delete_through_service(self, request, obj) -> None:
        raise NotImplementedError

    def delete_model(self, request, obj):
        self.delete_through_service(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_through_service(request, obj)


class StaffUserAdmin(DeletesThroughService, UserAdmin):
    def _may(self, request, obj, change: StaffChange) -> bool:
        return obj is None or may_change(actor=request.user, target=obj, change=change)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may(request, obj, StaffChange.PROFILE)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may(request, obj, StaffChange.DELETION)

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += ["is_superuser", "user_permissions", "last_login", "date_joined"]
            if obj is not None and obj.pk == request.user.pk:
                readonly += ["groups", "is_staff", "is_active"]
        return readonly

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id is None or request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        with account_change(actor=request.user, user_id=unquote(object_id)):
            return super().changeform_view(request, object_id, form_url, extra_context)

    def user_change_password(self, request, id, form_url=""):
        if request.method != "POST":
            return super().user_change_password(request, id, form_url)
        with account_change(actor=request.user, user_id=unquote(id)):
            return super().user_change_password(request, id, form_url)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            announce_account(actor=request.user, user=obj, reason="created")

    def delete_through_service(self, request, obj):
        staff_user_delete(actor=request.user, user=obj)


class RoleGroupAdmin(DeletesThroughService, GroupAdmin):
    def has_add_permission(self, request):
        return request.user.is_superuser and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and not is_role_group(obj) and super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return ("name", "permissions") if is_role_group(obj) else ()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if object_id is None or request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        with group_change(actor=request.user, group_id=unquote(object_id)):
            return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            announce(actor=request.user, object_type="group", object_ref=f"group:{obj.pk}", reason="created")

    def delete_through_service(self, request, obj):
        group_delete(actor=request.user, group=obj)


class SecondFactorAdmin(DeletesThroughService, admin.ModelAdmin):
    """A device model's admin: no secrets shown, changes under the policy and audited."""

    list_display = ("user", "name", "confirmed", "created_at", "last_used_at")
    list_filter = ("confirmed", "created_at", "last_used_at")
    list_select_related = ("user",)
    search_fields = ("user__username",)
    editable_fields = ("name", "confirmed")
    shown_fields = ("user", "name", "confirmed", "created_at", "last_used_at", "throttling_failure_timestamp",
                    "throttling_failure_count")

    def get_fields(self, request, obj=None):
        return self.shown_fields

    def get_readonly_fields(self, request, obj=None):
        return [name for name in self.shown_fields if name not in self.editable_fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may(request, obj)

    def _may(self, request, obj) -> bool:
        return obj is None or may_change(actor=request.user, target=obj.user, change=StaffChange.SECOND_FACTOR)

    def save_model(self, request, obj, form, change):
        otp_device_save(actor=request.user, device=obj)

    def delete_through_service(self, request, obj):
        otp_device_delete(actor=request.user, device=obj)


class TOTPDeviceAdmin(SecondFactorAdmin):
    shown_fields = (*SecondFactorAdmin.shown_fields, "digits", "step", "tolerance", "drift")


class BackupCodeDeviceAdmin(SecondFactorAdmin):
    list_display = (*SecondFactorAdmin.list_display, "codes_left")
    shown_fields = (*SecondFactorAdmin.shown_fields, "codes_left")

    @admin.display(description=gettext_lazy("codes left"))
    def codes_left(self, obj):
        return obj.token_set.count()
