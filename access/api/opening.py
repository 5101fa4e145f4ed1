"""POST /api/v1/devices/{id}/open - open a door or barrier remotely, once per Idempotency-Key."""

from django.conf import settings
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from access.api.base import ResidentApi, problems, rate_limit
from access.models import Device
from access.selectors.devices import device_for_resident
from access.services.opening import IDEMPOTENCY_KEY, device_open
from core.api.permissions import MissingScope
from core.api.serializers import no_body

OPEN_SCOPES = {Device.Kind.INTERCOM_DOOR: "doors:open", Device.Kind.BARRIER: "barriers:open"}


class NotOpenable(exceptions.APIException):
    status_code = 409
    default_detail = gettext_lazy("This device cannot be opened.")
    default_code = "not_openable"
    problem_code = "not-openable"


class DeviceOpenApi(ResidentApi):
    """Scope `doors:open` for intercom doors, `barriers:open` for barriers (checked once the
    device is known to be yours, so a foreign id is 404 whatever the token's scopes)."""

    checks_suspension_itself = True
    required_scopes = {"POST": tuple(OPEN_SCOPES.values())}  # one of them here; the device's own below

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "DeviceOpenResult"

        result = serializers.ChoiceField(
            choices=["opened", "denied", "offline"],
            help_text="opened; denied (by the partner, e.g. lockdown); offline (the device did not answer)",
        )
        device_id = serializers.IntegerField()
        replayed = serializers.BooleanField(help_text="True when this is the stored result of an earlier request")
        requested_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="devices_open", tags=["devices"], request=None,
        summary="Open a door or barrier",
        parameters=[
            OpenApiParameter(
                "Idempotency-Key", str, OpenApiParameter.HEADER, required=True, pattern=IDEMPOTENCY_KEY.pattern,
                description="8-64 characters [A-Za-z0-9._:-], e.g. a UUID; a retry with the same key "
                            "returns the stored result and never opens twice",
            ),
        ],
        responses={200: OutputSerializer, **problems(
            404, 409, 422, 503,
            s409="An open with this key is still in progress (`/problems/open-in-progress`), or the device is not "
                 "a door or barrier (`/problems/not-openable`)",
            s503="The partner platform is unavailable (`/problems/partner-unavailable`), or the shared cache is "
                 "down; see Retry-After")},
    )
    def post(self, request, device_id: int):
        no_body(request)
        key = request.headers.get("Idempotency-Key", "")
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise exceptions.ValidationError(
                {"Idempotency-Key": [serializers.ErrorDetail(
                    "An Idempotency-Key header of 8-64 characters [A-Za-z0-9._:-] is required.", code="invalid")]}
            )
        device = device_for_resident(resident=self.resident, device_id=device_id)
        scope = OPEN_SCOPES.get(device.kind)
        if scope is None:
            raise NotOpenable()
        if not request.auth.allow_scopes([scope]):
            raise MissingScope(scope)
        rate_limit(f"open:user:{request.user.pk}:device:{device.pk}", int(getattr(settings, "OPEN_RATE_PER_MIN", 6)))
        outcome = device_open(
            user=request.user, resident=self.resident, device=device, idempotency_key=key,
            source_ip=self.source_ip(),
        )
        data = {
            "result": outcome.request.result, "device_id": device.pk, "replayed": outcome.replayed,
            "requested_at": outcome.request.created_at,
        }
        return Response(self.OutputSerializer(data).data)
