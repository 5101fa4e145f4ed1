"""URLs of the partners app, mounted under its API prefix by smarthome.urls."""

from django.urls import path

from partners.api import PartnerEventApi

urlpatterns: list = [
    path("events", PartnerEventApi.as_view(), name="events"),
]
