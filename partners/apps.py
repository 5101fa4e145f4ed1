from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PartnersConfig(AppConfig):
    name = "partners"
    verbose_name = _("Partners")

    def ready(self):
        # imported here, not at the top: receivers use models, which load after the app configs
        from oauth2_provider.signals import app_authorized

        from core.observability.scrape import register_scrape_collector
        from partners.authentication import token_issued
        from partners.metrics import SharedStateCollector

        app_authorized.connect(token_issued, dispatch_uid="partners.token_issued")
        register_scrape_collector(SharedStateCollector())
