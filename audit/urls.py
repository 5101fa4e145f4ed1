"""URLs of the audit app, mounted under its API prefix by smarthome.urls."""

urlpatterns: list = []
