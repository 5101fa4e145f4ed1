"""URLs of the audit app, mounted under /api/v1/ by smarthome.urls."""

from django.urls import path

from audit.api import ExportApi, PublicKeyApi

urlpatterns = [
    path("audit/export", ExportApi.as_view(), name="audit-export"),
    path("audit/public-key", PublicKeyApi.as_view(), name="audit-public-key"),
]
