from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "partners"

    def ready(self):
        from oauth2_provider.signals import app_authorized

        from partners.authentication import token_issued

        app_authorized.connect(token_issued, dispatch_uid="partners.token_issued")
