from django.apps import AppConfig


class IdentityConfig(AppConfig):
    """Resident sign-in (OpenID Connect provider or invitations), staff through the directory,
    and the audit of every sign-in. Sits above `access` in the import order."""

    name = "identity"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from identity import receivers  # noqa: F401 - connects the signal receivers
