from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MasterdataConfig(AppConfig):
    """Master data from the developer's systems: the integration API for tenant-core and the
    admin's spreadsheet import and export. Sits above `access` and `identity` in the import order;
    nothing imports it but the URL conf and the settings."""

    name = "masterdata"
    verbose_name = _("Master data import")
    default_auto_field = "django.db.models.BigAutoField"
