"""GET /api/v1/me — who the token belongs to, and what it may do."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.security.identifiers import user_ref


class MeApi(APIView):
    class OutputSerializer(serializers.Serializer):
        actor_ref = serializers.CharField(help_text="Your pseudonymous reference, as it appears in audit records")
        scopes = serializers.ListField(child=serializers.CharField(), help_text="Scopes granted to this token")
        token_expires_at = serializers.DateTimeField()

    @extend_schema(responses=OutputSerializer, operation_id="me_retrieve", tags=["me"])
    def get(self, request):
        token = request.auth
        data = {
            "actor_ref": user_ref(request.user),
            "scopes": sorted(token.scope.split()),
            "token_expires_at": token.expires,
        }
        return Response(self.OutputSerializer(data).data)
