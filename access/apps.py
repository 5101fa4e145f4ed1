from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"

    def ready(self):
        # imported here, not at the top: receivers use models, which load after the app configs
        from access import (
            receivers,  # noqa: F401 - connects the signal receivers
            receivers_partner_events,  # noqa: F401
        )
        from access.data_export import register_access_sections

        register_access_sections()
