"""Audit API: the compliance export (streamed, with proof) and the public checkpoint key."""

from django.http import StreamingHttpResponse
from django.utils.translation import gettext
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import signing
from audit.actions import Action, Outcome
from audit.services import audit_export_start
from core.api.authentication import BudgetedOAuth2Authentication
from core.api.oauth_schemes import SERVICE_CLIENT
from core.api.permissions import MissingScope
from core.api.schema import problems
from core.api.serializers import QuerySerializer
from core.security.identifiers import user_ref
from core.security.roles import COMPLIANCE_OFFICER, has_role

EXPORT_SCOPE = "audit:export"
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


class IsComplianceOfficer(BasePermission):
    """A compliance officer; through OAuth2 the token must also carry `audit:export`."""

    required_scopes = (EXPORT_SCOPE,)

    def has_permission(self, request, view):
        if request.user is None or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        token = request.auth
        if hasattr(token, "allow_scopes") and not token.allow_scopes([EXPORT_SCOPE]):
            raise MissingScope(EXPORT_SCOPE)
        if not has_role(request.user, COMPLIANCE_OFFICER):
            raise exceptions.PermissionDenied(gettext("Only compliance officers may export the audit log."))
        return True


class ExportApi(APIView):
    """`GET /api/v1/audit/export?format=csv|jsonl&from=&to=&building=&partner=&action=&outcome=`."""

    authentication_classes = [BudgetedOAuth2Authentication, SessionAuthentication]
    permission_classes = [IsComplianceOfficer]
    oauth2_scheme = SERVICE_CLIENT

    class InputSerializer(QuerySerializer):
        format = serializers.ChoiceField(choices=["csv", "jsonl"], default="jsonl")
        since = serializers.DateTimeField(required=False)  # the query parameter `from`
        to = serializers.DateTimeField(required=False)
        building = serializers.IntegerField(required=False, min_value=0)
        partner = serializers.IntegerField(required=False, min_value=0)
        action = serializers.ChoiceField(choices=Action.choices, required=False)
        outcome = serializers.ChoiceField(choices=Outcome.choices, required=False)

        def get_fields(self):
            fields = super().get_fields()
            fields["from"] = fields.pop("since")
            return fields

        def validate(self, attrs):
            if attrs.get("from") and attrs.get("to") and attrs["from"] >= attrs["to"]:
                raise serializers.ValidationError(
                    {"to": serializers.ErrorDetail(gettext("must be after from"), code="order")})
            return attrs

    def perform_content_negotiation(self, request, force=False):
        # `format` is our own parameter (csv|jsonl), not DRF's renderer override
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        parameters=[InputSerializer],
        responses={(200, "text/csv"): OpenApiTypes.BINARY, (200, "application/x-ndjson"): OpenApiTypes.BINARY,
                   **problems(400, 403, s400="Invalid parameters, or `to` not after `from`",
                              s403="Not a compliance officer, or the token lacks `audit:export`")},
        summary="Export the audit log with proof (compliance officers; `to` must be after `from`)",
    )
    def get(self, request):
        serializer = self.InputSerializer(data=request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        params = serializer.validated_data
        fmt = params["format"]
        stream, filename = audit_export_start(
            user=request.user,
            actor_ref=user_ref(request.user),
            fmt=fmt,
            since=params.get("from"),
            until=params.get("to"),
            building_id=params.get("building"),
            partner_id=params.get("partner"),
            action=params.get("action"),
            outcome=params.get("outcome"),
        )
        response = StreamingHttpResponse(stream, content_type=CONTENT_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response


@extend_schema_serializer(component_name="AuditVerificationKey")
class VerificationKeySerializer(serializers.Serializer):
    key_id = serializers.CharField()
    public_key_pem = serializers.CharField()
    current = serializers.BooleanField()


class PublicKeyApi(APIView):
    """`GET /api/v1/audit/public-key`: the Ed25519 key that signs checkpoints and exports now, and
    `keys`: every key that still verifies (the current one first, then retired ones). No auth."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="AuditPublicKey")
    class OutputSerializer(serializers.Serializer):
        algorithm = serializers.CharField()
        key_id = serializers.CharField()
        public_key_pem = serializers.CharField()
        keys = VerificationKeySerializer(many=True, help_text="Every key that still verifies, current first")

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        key = signing.public_key()
        keys = [{"key_id": key_id, "public_key_pem": signing.public_key_pem(k), "current": index == 0}
                for index, (key_id, k) in enumerate(signing.keyring().items())]
        data = {"algorithm": "Ed25519", "key_id": signing.key_id(key), "public_key_pem": signing.public_key_pem(key),
                "keys": VerificationKeySerializer(keys, many=True).data}
        return Response(self.OutputSerializer(data).data)
