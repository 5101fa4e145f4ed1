"""Partner API routes of the access app, mounted under /partner/v1/ by smarthome.urls."""

from django.urls import path

from access.api.partner_decisions import AccessDecisionApi

urlpatterns = [
    path("access-decisions", AccessDecisionApi.as_view(), name="access-decisions"),
]
