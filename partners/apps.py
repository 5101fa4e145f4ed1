from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "partners"

    def ready(self):
        # imported here, not at the top: receivers use models, which load after the app configs
        from oauth2_provider.signals import app_authorized

        from core.observability.scrape import register_scrape_collector
        from partners.authentication import token_issued
        from partners.metrics import SharedStateCollector
        from partners.outbox.receivers import partner_breaker_closed_receiver
        from partners.signals import partner_breaker_closed

        app_authorized.connect(token_issued, dispatch_uid="partners.token_issued")
        partner_breaker_closed.connect(partner_breaker_closed_receiver, dispatch_uid="partners.outbox.breaker_closed")
        register_scrape_collector(SharedStateCollector())
