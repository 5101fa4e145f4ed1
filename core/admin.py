"""Admin wiring of the project app (imported by admin autodiscovery at start-up).

Makes `admin.site` the OTP-required site before any page is served, keeps the role groups in
step with core.security.role_permissions after every migrate, and puts staff accounts, groups
and second factors under the staff policy (core/portal/accounts.py).
"""

from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db.models.signals import post_migrate
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.models import EncryptedTOTPDevice
from core.portal import site as admin_site  # noqa: F401  (installs the OTP-required admin site)
from core.portal.accounts import BackupCodeDeviceAdmin, RoleGroupAdmin, StaffUserAdmin, TOTPDeviceAdmin
from core.security.role_permissions import sync_after_migrate

post_migrate.connect(sync_after_migrate, dispatch_uid="core.sync_role_groups")

for _model in (User, Group, TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
admin.site.register(User, StaffUserAdmin)
admin.site.register(Group, RoleGroupAdmin)
admin.site.register(EncryptedTOTPDevice, TOTPDeviceAdmin)
admin.site.register(StaticDevice, BackupCodeDeviceAdmin)
