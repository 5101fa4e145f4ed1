"""GET /api/v1/devices - the doors, barriers and cameras the resident holds an active grant for."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from access.api.base import ResidentApi
from access.models import Device
from access.selectors.devices import devices_for_resident


class DeviceListApi(ResidentApi):
    required_scopes = {"GET": ("devices:read",)}

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "Device"

        id = serializers.IntegerField()
        name = serializers.CharField()
        kind = serializers.ChoiceField(choices=Device.Kind.choices)
        online = serializers.BooleanField(help_text="Online state as last reported by the partner")
        last_seen_at = serializers.DateTimeField(allow_null=True)
        building_id = serializers.IntegerField()
        building_name = serializers.CharField(source="building.name")

    @extend_schema(
        operation_id="devices_list", tags=["devices"],
        summary="Your devices (active grants only)",
        responses={200: OutputSerializer(many=True)},
    )
    def get(self, request):
        devices = devices_for_resident(resident=self.resident)
        return Response(self.OutputSerializer(devices, many=True).data)
