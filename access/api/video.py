"""POST /api/v1/devices/{id}/video-sessions - a WebRTC session created by the partner."""

from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from access.api.base import ResidentApi, problems
from access.models import Device
from access.selectors.devices import device_for_resident
from access.services.video import video_session_create
from core.api.serializers import BodySerializer, text_pattern

VIDEO_KINDS = {Device.Kind.INTERCOM_DOOR, Device.Kind.CAMERA}
# An SDP offer (RFC 8866) starts with its version line and is lines (CRLF): the character rule
# with line breaks allowed.
SDP_OFFER = text_pattern(multiline=True).replace("^", "^v=0", 1)


class NoVideo(exceptions.APIException):
    status_code = 409
    default_detail = gettext_lazy("This device has no camera.")
    default_code = "no_video"
    problem_code = "no-video"


class VideoSessionCreateApi(ResidentApi):
    """Video flows between the app and the partner; this service only brokers the session."""

    checks_suspension_itself = True

    required_scopes = {"POST": ("video:view",)}

    class InputSerializer(BodySerializer):
        class Meta:
            ref_name = "VideoSessionRequest"

        multiline_fields = frozenset({"sdp_offer"})  # an SDP offer is lines (RFC 8866: CRLF)

        sdp_offer = serializers.RegexField(
            SDP_OFFER, required=False, max_length=20000, trim_whitespace=False,
            help_text="The app's SDP offer (starts with v=0), optional",
            error_messages={"invalid": gettext_lazy("An SDP offer starts with v=0.")},
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "VideoSession"

        session_id = serializers.CharField()
        sdp = serializers.CharField(help_text="The partner's SDP answer")
        ice_servers = serializers.ListField(child=serializers.DictField(), help_text="STUN/TURN servers")
        expires_at = serializers.CharField(help_text="RFC 3339 time the session ends")

    @extend_schema(
        operation_id="devices_video_session_create", tags=["devices"], request=InputSerializer,
        summary="Start a live video session",
        responses={201: OutputSerializer, **problems(
            404, 409, 503,
            s409="The device has no camera (`/problems/no-video`) or is offline (`/problems/device-offline`)",
            s503="The partner platform is unavailable (`/problems/partner-unavailable`), or the shared cache is "
                 "down; see Retry-After")},
    )
    def post(self, request, device_id: int):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        device = device_for_resident(resident=self.resident, device_id=device_id)
        if device.kind not in VIDEO_KINDS:
            raise NoVideo()
        offer = serializer.validated_data.get("sdp_offer")
        session = video_session_create(
            user=request.user, resident=self.resident, device=device, sdp_offer=offer, source_ip=self.source_ip()
        )
        data = {"session_id": session.session_id, "sdp": session.sdp, "ice_servers": session.ice_servers,
                "expires_at": session.expires_at}
        return Response(self.OutputSerializer(data).data, status=201)
