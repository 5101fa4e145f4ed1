from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = _("Residents and access")

    def ready(self):
        # imported here, not at the top: receivers use models, which load after the app configs
        from access import (
            receivers,  # noqa: F401 - connects the signal receivers
            receivers_partner_events,  # noqa: F401
        )
        from access.data_export import register_access_sections

        register_access_sections()
