from django.apps import AppConfig
from django.db.models.signals import pre_save


class CoreConfig(AppConfig):
    """The shared kernel: crypto, HTTP conventions, roles and tenancy, observability, the admin site."""

    name = "core"
    verbose_name = "smarthome core"

    def ready(self):
        from axes.models import AccessAttempt
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from core.auth.lockout_records import drop_form_data
        from core.auth.otp import refuse_plaintext_totp_device
        from core.auth.two_factor_pages import install_generator_method

        pre_save.connect(drop_form_data, sender=AccessAttempt, dispatch_uid="core.axes_drop_form_data")
        pre_save.connect(refuse_plaintext_totp_device, sender=TOTPDevice, dispatch_uid="core.refuse_plain_totp")
        install_generator_method()
