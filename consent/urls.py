"""URLs of the consent app, mounted under its API prefix by smarthome.urls."""

urlpatterns: list = []
