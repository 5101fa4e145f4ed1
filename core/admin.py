"""Admin wiring of the project app (imported by admin autodiscovery at start-up).

Makes `admin.site` the OTP-required site before any page is served and keeps the role groups
in step with core.security.role_permissions after every migrate. Users are edited by the security
admin, who may assign roles but not make anyone a superuser.
"""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models.signals import post_migrate

from core.portal import site as admin_site  # noqa: F401  (installs the OTP-required admin site)
from core.security.role_permissions import sync_after_migrate

post_migrate.connect(sync_after_migrate, dispatch_uid="core.sync_role_groups")


class StaffUserAdmin(UserAdmin):
    """Users for the security admin: roles (groups) yes, superuser status and raw permissions no."""

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += ["is_superuser", "user_permissions", "last_login", "date_joined"]
        return readonly


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
