from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"

    def ready(self):
        from audit import receivers  # noqa: F401 - connects the signal receivers
        from audit.monitoring import AuditHealthCollector
        from core.observability.scrape import register_scrape_collector

        register_scrape_collector(AuditHealthCollector())
