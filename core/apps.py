from django.apps import AppConfig
from django.conf import settings


class CoreConfig(AppConfig):
    """The shared kernel: crypto, HTTP conventions, roles and tenancy, observability, the admin site."""

    name = "core"
    verbose_name = "smarthome core"

    def ready(self):
        if settings.PRODUCTION:
            from core.crypto.keyring import get_keyring

            get_keyring()  # a missing or malformed keyring stops the process now, not at the first read
