from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The shared kernel: crypto, HTTP conventions, roles and tenancy, observability, the admin site."""

    name = "core"
    verbose_name = "smarthome core"
