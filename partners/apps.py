from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PartnersConfig(AppConfig):
    name = "partners"
    verbose_name = _("Partners")

    def ready(self):
        # imported here, not at the top: receivers use models, which load after the app configs
        from oauth2_provider.signals import app_authorized

        from core.observability.certificates import register_certificate_source
        from core.observability.health import register_readiness_info
        from core.observability.scrape import register_scrape_collector
        from partners.authentication import token_issued
        from partners.metrics import SharedStateCollector
        from partners.monitoring import DeadLetterCollector, partner_certificates, partner_reachability
        from partners.outbox.receivers import partner_breaker_closed_receiver
        from partners.signals import partner_breaker_closed

        app_authorized.connect(token_issued, dispatch_uid="partners.token_issued")
        partner_breaker_closed.connect(partner_breaker_closed_receiver, dispatch_uid="partners.outbox.breaker_closed")
        register_readiness_info("partner", partner_reachability)
        register_certificate_source(partner_certificates)
        register_scrape_collector(SharedStateCollector())
        register_scrape_collector(DeadLetterCollector())
