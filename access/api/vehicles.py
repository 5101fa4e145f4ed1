"""/api/v1/vehicles - the resident's cars.

Scopes: writes need `vehicles:write`; reads accept `vehicles:write` or `devices:read` (the app
shows cars next to barriers, and a token that may change cars may see them).
"""

from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from access.api.base import ResidentApi, paginated, problems
from access.plates import PlateField
from access.selectors.vehicles import vehicle_for_resident, vehicles_for_resident
from access.services.vehicles import vehicle_create, vehicle_delete, vehicle_update
from core.api.pagination import PageQuerySerializer, StandardPagination
from core.api.serializers import BodySerializer

READ = ("vehicles:write", "devices:read")
WRITE = ("vehicles:write",)
PLATE_TAKEN = "Another car already has this plate (`/problems/plate-taken`)"


class VehicleOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Vehicle"

    id = serializers.IntegerField()
    plate = serializers.CharField(help_text="Normalised plate (Latin letters), e.g. A123BC77")
    label = serializers.CharField()
    created_at = serializers.DateTimeField()


def _require_resident(view):
    if view.resident is None:
        raise serializers.ValidationError({"non_field_errors": [gettext("Only residents have vehicles.")]},
                                          code="not_resident")
    return view.resident


class VehicleListCreateApi(ResidentApi):
    required_scopes = {"GET": READ, "POST": WRITE}
    conflict_codes = frozenset({"plate_taken"})

    class InputSerializer(BodySerializer):
        class Meta:
            ref_name = "VehicleCreate"

        plate = PlateField()
        label = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")

    @extend_schema(operation_id="vehicles_list", tags=["vehicles"], parameters=[PageQuerySerializer],
                   responses={200: paginated(VehicleOutputSerializer, "VehiclePage"), **problems(404)})
    def get(self, request):
        paginator = StandardPagination()
        page = paginator.paginate_queryset(vehicles_for_resident(resident=self.resident), request, view=self)
        return paginator.get_paginated_response(VehicleOutputSerializer(page, many=True).data)

    @extend_schema(operation_id="vehicles_create", tags=["vehicles"], request=InputSerializer,
                   responses={201: VehicleOutputSerializer, **problems(409, s409=PLATE_TAKEN)})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        vehicle = vehicle_create(resident=_require_resident(self), actor=request.user, **serializer.validated_data)
        return Response(VehicleOutputSerializer(vehicle).data, status=201)


class VehicleDetailApi(ResidentApi):
    required_scopes = {"GET": READ, "PATCH": WRITE, "DELETE": WRITE}
    conflict_codes = frozenset({"plate_taken"})

    class InputSerializer(BodySerializer):
        class Meta:
            ref_name = "VehicleUpdate"

        plate = PlateField(required=False)
        label = serializers.CharField(max_length=64, required=False, allow_blank=True)

    @extend_schema(operation_id="vehicles_retrieve", tags=["vehicles"], responses={200: VehicleOutputSerializer})
    def get(self, request, vehicle_id: int):
        vehicle = vehicle_for_resident(resident=self.resident, vehicle_id=vehicle_id)
        return Response(VehicleOutputSerializer(vehicle).data)

    @extend_schema(operation_id="vehicles_partial_update", tags=["vehicles"], request=InputSerializer,
                   responses={200: VehicleOutputSerializer, **problems(409, s409=PLATE_TAKEN)})
    def patch(self, request, vehicle_id: int):
        vehicle = vehicle_for_resident(resident=self.resident, vehicle_id=vehicle_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        vehicle = vehicle_update(vehicle=vehicle, actor=request.user, **serializer.validated_data)
        return Response(VehicleOutputSerializer(vehicle).data)

    @extend_schema(operation_id="vehicles_destroy", tags=["vehicles"], responses={204: None})
    def delete(self, request, vehicle_id: int):
        vehicle = vehicle_for_resident(resident=self.resident, vehicle_id=vehicle_id)
        vehicle_delete(vehicle=vehicle, actor=request.user)
        return Response(status=204)
