from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import pre_save
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    """The shared kernel: crypto, HTTP conventions, roles and tenancy, observability, the admin site."""

    name = "core"
    verbose_name = _("Staff security")  # the admin's section: staff second factors and sessions

    def ready(self):
        from axes.models import AccessAttempt
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from core.auth.lockout_records import drop_form_data
        from core.auth.otp import refuse_plaintext_totp_device
        from core.auth.two_factor_pages import install_generator_method

        pre_save.connect(drop_form_data, sender=AccessAttempt, dispatch_uid="core.axes_drop_form_data")
        pre_save.connect(refuse_plaintext_totp_device, sender=TOTPDevice, dispatch_uid="core.refuse_plain_totp")
        install_generator_method()

        from core.observability.certificates import (
            CertificateExpiryCollector,
            register_certificate_source,
            server_certificate,
        )
        from core.observability.health import ReadinessCollector
        from core.observability.scrape import register_scrape_collector

        register_certificate_source(server_certificate)
        register_scrape_collector(CertificateExpiryCollector())
        register_scrape_collector(ReadinessCollector())

        if not settings.PRODUCTION:
            return
        if settings.DEBUG or not (settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE):
            raise ImproperlyConfigured(
                "SMARTHOME_ENV=production with settings that are not hardened (DEBUG or insecure cookies): "
                "use DJANGO_SETTINGS_MODULE=smarthome.settings.production or a module that imports it"
            )
        from core.crypto.keyring import get_keyring

        get_keyring()  # a missing or malformed keyring stops the process now, not at the first read
