"""URLs of the access app, mounted under its API prefix by smarthome.urls."""

urlpatterns: list = []
