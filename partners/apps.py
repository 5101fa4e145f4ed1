from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "partners"

    def ready(self):
        from oauth2_provider.signals import app_authorized

        from core.observability.certificates import register_certificate_source
        from core.observability.health import register_readiness_info
        from core.observability.scrape import register_scrape_collector
        from partners.authentication import forget_partner_certificates, token_issued
        from partners.monitoring import DeadLetterCollector, partner_certificates, partner_reachability
        from partners.signals import partner_scope_changed

        app_authorized.connect(token_issued, dispatch_uid="partners.token_issued")
        partner_scope_changed.connect(forget_partner_certificates, dispatch_uid="partners.forget_certificates")
        register_readiness_info("partner", partner_reachability)
        register_certificate_source(partner_certificates)
        register_scrape_collector(DeadLetterCollector())
