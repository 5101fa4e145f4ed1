"""Test-only views that raise each kind of error, mounted beside the real URL map."""

from django.urls import path
from rest_framework import serializers
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from smarthome.urls import urlpatterns as real_urlpatterns

handler400 = "core.http.problems.handler400"
handler403 = "core.http.problems.handler403"
handler404 = "core.http.problems.handler404"
handler500 = "core.http.problems.handler500"


class EchoApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=5)
        nested = serializers.DictField(child=serializers.IntegerField(), required=False)

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data)


class SecretApi(APIView):
    """Default authentication (OAuth2) and permissions: no token is 401."""

    def get(self, request):
        return Response({"ok": True})


class NeverAllowed(BasePermission):
    def has_permission(self, request, view):
        return False


class ForbiddenApi(APIView):
    permission_classes = [NeverAllowed]
    authentication_classes = []

    def get(self, request):
        return Response({})


class OncePerMinute(AnonRateThrottle):
    rate = "1/min"
    scope = "problem-test"


class ThrottledApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [OncePerMinute]

    def get(self, request):
        return Response({"ok": True})


class CrashApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    def get(self, request):
        raise RuntimeError("boom with token=abc123secretvalue")


urlpatterns = [
    path("api/v1/_test/echo", EchoApi.as_view()),
    path("api/v1/_test/secret", SecretApi.as_view()),
    path("api/v1/_test/forbidden", ForbiddenApi.as_view()),
    path("api/v1/_test/throttled", ThrottledApi.as_view()),
    path("api/v1/_test/crash", CrashApi.as_view()),
    *real_urlpatterns,
]
