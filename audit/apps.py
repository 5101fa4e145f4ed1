from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = _("Audit")

    def ready(self):
        from audit import receivers  # noqa: F401 - connects the signal receivers
        from audit.monitoring import AuditHealthCollector
        from core.observability.scrape import register_scrape_collector

        register_scrape_collector(AuditHealthCollector())
