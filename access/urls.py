"""Resident API routes, mounted under /api/v1/ by smarthome.urls."""

from django.urls import path

from access.api.me import MeApi

urlpatterns = [
    path("me", MeApi.as_view(), name="me"),
]
