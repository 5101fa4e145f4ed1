"""URLs of the consent app, mounted under its API prefix by smarthome.urls."""

from django.urls import path

from consent.api import (
    ConsentListApi,
    ConsentReceiptApi,
    ConsentRevokeApi,
    ConsentTextApi,
    DataExportApi,
    FaceEnrolmentApi,
    ReceiptKeysApi,
)

urlpatterns = [
    path("consent-texts", ConsentTextApi.as_view(), name="consent-texts"),
    path("consents", ConsentListApi.as_view(), name="consents"),
    path("consents/<int:pk>/revoke", ConsentRevokeApi.as_view(), name="consent-revoke"),
    path("consents/<int:pk>/receipt", ConsentReceiptApi.as_view(), name="consent-receipt"),
    path("consents/receipt-keys", ReceiptKeysApi.as_view(), name="consent-receipt-keys"),
    path("biometrics/face", FaceEnrolmentApi.as_view(), name="biometrics-face"),
    path("me/data-export", DataExportApi.as_view(), name="me-data-export"),
]
