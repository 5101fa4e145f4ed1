"""URLs of the partners app, mounted under its API prefix by smarthome.urls."""

urlpatterns: list = []
