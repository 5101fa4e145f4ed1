"""/api/v1/guest-passes - passes for a guest's car at a barrier of the resident's building (scope `guests:write`)."""

from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from access.api.base import ResidentApi, paginated, problems
from access.errors import DeviceNotFound
from access.models import GuestPass
from access.plates import PlateField
from access.selectors.devices import device_for_resident
from access.selectors.guest_passes import guest_pass_for_resident, guest_passes_for_resident
from access.services.guest_passes import guest_pass_create, guest_pass_revoke
from core.api.pagination import PageQuerySerializer, StandardPagination
from core.api.serializers import BodySerializer, no_body

SCOPES = ("guests:write",)


class GuestPassOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "GuestPass"

    id = serializers.IntegerField()
    device_id = serializers.IntegerField()
    plate = serializers.CharField(help_text="Normalised plate of the guest's car")
    label = serializers.CharField()
    valid_from = serializers.DateTimeField()
    valid_until = serializers.DateTimeField()
    one_time = serializers.BooleanField()
    used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    active = serializers.BooleanField(source="is_active")
    status = serializers.ChoiceField(source="state", choices=GuestPass.State.choices,
                                     help_text="scheduled, active, used, expired or revoked")


class GuestPassListCreateApi(ResidentApi):
    required_scopes = {"GET": SCOPES, "POST": SCOPES}
    conflict_codes = frozenset({"limit_reached"})

    class InputSerializer(BodySerializer):
        class Meta:
            ref_name = "GuestPassCreate"

        device_id = serializers.IntegerField(help_text="A barrier of your building")
        plate = PlateField()
        label = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
        valid_from = serializers.DateTimeField(required=False, help_text="Default: now")
        valid_until = serializers.DateTimeField(required=False, help_text="Default: valid_from + 1 day; max 7 days")
        one_time = serializers.BooleanField(required=False, default=False, help_text="Lets one car through once")

    @extend_schema(operation_id="guest_passes_list", tags=["guest-passes"], parameters=[PageQuerySerializer],
                   responses={200: paginated(GuestPassOutputSerializer, "GuestPassPage"), **problems(404)})
    def get(self, request):
        paginator = StandardPagination()
        page = paginator.paginate_queryset(guest_passes_for_resident(resident=self.resident), request, view=self)
        return paginator.get_paginated_response(GuestPassOutputSerializer(page, many=True).data)

    @extend_schema(operation_id="guest_passes_create", tags=["guest-passes"], request=InputSerializer,
                   responses={201: GuestPassOutputSerializer, **problems(
                       400, 403, 409,
                       s400="Invalid request: `device_id` not a barrier of your building, a window that starts in "
                            "the past, ends before it starts or lasts more than GUEST_PASS_MAX_DAYS, or the barrier's "
                            "partner is not configured",
                       s403="Missing scope, or a rule refuses you the barrier (`reason`)",
                       s409="GUEST_PASSES_ACTIVE_MAX passes are active already (`/problems/limit-reached`)")})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        try:
            device = device_for_resident(resident=self.resident, device_id=data.pop("device_id"))
        except DeviceNotFound:  # a device that is not yours is just "unknown" here
            raise serializers.ValidationError(
                {"device_id": [serializers.ErrorDetail(gettext("Unknown device."), code="does_not_exist")]}
            ) from None
        guest_pass = guest_pass_create(resident=self.resident, device=device, actor=request.user, **data)
        return Response(GuestPassOutputSerializer(guest_pass).data, status=201)


class GuestPassDetailApi(ResidentApi):
    """A pass stays readable for good, with its status; revoke it with POST .../revoke (DELETE is
    405: nothing is deleted)."""

    required_scopes = {"GET": SCOPES}

    @extend_schema(operation_id="guest_passes_retrieve", tags=["guest-passes"],
                   responses={200: GuestPassOutputSerializer})
    def get(self, request, pass_id: int):
        guest_pass = guest_pass_for_resident(resident=self.resident, pass_id=pass_id)
        return Response(GuestPassOutputSerializer(guest_pass).data)


class GuestPassRevokeApi(ResidentApi):
    required_scopes = {"POST": SCOPES}

    @extend_schema(operation_id="guest_passes_revoke", tags=["guest-passes"], request=None,
                   summary="Revoke a guest pass (idempotent: a revoked pass is returned as it is)",
                   responses={200: GuestPassOutputSerializer})
    def post(self, request, pass_id: int):
        no_body(request)
        guest_pass = guest_pass_for_resident(resident=self.resident, pass_id=pass_id)
        return Response(GuestPassOutputSerializer(guest_pass_revoke(guest_pass=guest_pass, actor=request.user)).data)
