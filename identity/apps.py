from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class IdentityConfig(AppConfig):
    """Resident sign-in (OpenID Connect provider or invitations), staff through the directory,
    and the audit of every sign-in. Sits above `access` in the import order."""

    name = "identity"
    verbose_name = _("Resident sign-in")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from identity import receivers  # noqa: F401 - connects the signal receivers
