from django.apps import AppConfig


class SmarthomeConfig(AppConfig):
    name = "smarthome"
    verbose_name = "smarthome infrastructure"
