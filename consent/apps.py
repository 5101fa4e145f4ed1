from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"

    def ready(self):
        from consent.receivers import on_outbox_delivered
        from partners.signals import outbox_delivered

        outbox_delivered.connect(on_outbox_delivered, dispatch_uid="consent.on_outbox_delivered")
