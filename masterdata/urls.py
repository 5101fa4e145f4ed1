"""Routes of the integration API, mounted under /integration/v1/ by smarthome.urls."""

from django.urls import path

from masterdata.api import ReconciliationApi, RecordBatchApi

urlpatterns = [
    path("records", RecordBatchApi.as_view(), name="records"),
    path("reconciliation", ReconciliationApi.as_view(), name="reconciliation"),
]
