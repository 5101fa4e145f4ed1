from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "partners"

    def ready(self):
        # imported here, not at the top: receivers use models, which load after the app configs
        from oauth2_provider.signals import app_authorized

        from core.observability.scrape import register_scrape_collector
        from partners.authentication import forget_partner_certificates, token_issued
        from partners.metrics import SharedStateCollector
        from partners.signals import partner_scope_changed

        app_authorized.connect(token_issued, dispatch_uid="partners.token_issued")
        partner_scope_changed.connect(forget_partner_certificates, dispatch_uid="partners.forget_certificates")
        register_scrape_collector(SharedStateCollector())
