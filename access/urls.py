"""Resident API routes, mounted under /api/v1/ by smarthome.urls."""

from django.urls import path

from access.api.devices import DeviceListApi
from access.api.guest_passes import GuestPassDetailApi, GuestPassListCreateApi, GuestPassRevokeApi
from access.api.history import HistoryListApi
from access.api.me import MeApi
from access.api.notifications import NotificationListApi, NotificationReadApi
from access.api.opening import DeviceOpenApi
from access.api.vehicles import VehicleDetailApi, VehicleListCreateApi
from access.api.video import VideoSessionCreateApi

urlpatterns = [
    path("me", MeApi.as_view(), name="me"),
    path("devices", DeviceListApi.as_view(), name="devices"),
    path("devices/<int:device_id>/open", DeviceOpenApi.as_view(), name="device-open"),
    path("devices/<int:device_id>/video-sessions", VideoSessionCreateApi.as_view(), name="device-video-sessions"),
    path("vehicles", VehicleListCreateApi.as_view(), name="vehicles"),
    path("vehicles/<int:vehicle_id>", VehicleDetailApi.as_view(), name="vehicle"),
    path("guest-passes", GuestPassListCreateApi.as_view(), name="guest-passes"),
    path("guest-passes/<int:pass_id>", GuestPassDetailApi.as_view(), name="guest-pass"),
    path("guest-passes/<int:pass_id>/revoke", GuestPassRevokeApi.as_view(), name="guest-pass-revoke"),
    path("history", HistoryListApi.as_view(), name="history"),
    path("notifications", NotificationListApi.as_view(), name="notifications"),
    path("notifications/<int:notification_id>/read", NotificationReadApi.as_view(), name="notification-read"),
]
