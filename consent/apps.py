from django.apps import AppConfig
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = _("Consents")

    def ready(self):
        # imported here, not at the top: receivers use models, which load after the app configs
        from consent.data_export import register_consent_sections
        from consent.receivers import on_outbox_delivered, on_partner_event
        from partners.signals import outbox_delivered, partner_event_received

        register_consent_sections()

        outbox_delivered.connect(on_outbox_delivered, dispatch_uid="consent.on_outbox_delivered")
        partner_event_received.connect(on_partner_event, dispatch_uid="consent.on_partner_event")
        if settings.PRODUCTION:
            from consent.receipts import receipt_keyring

            receipt_keyring()  # a missing or malformed receipt key stops the process now

