from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"

    def ready(self):
        # imported here, not at the top: receivers use models, which load after the app configs
        from consent.receivers import on_outbox_delivered, on_partner_event
        from partners.signals import outbox_delivered, partner_event_received

        outbox_delivered.connect(on_outbox_delivered, dispatch_uid="consent.on_outbox_delivered")
        partner_event_received.connect(on_partner_event, dispatch_uid="consent.on_partner_event")
