"""POST /partner/v1/access-decisions — may this car / face pass this device now?

Routed in access/partner_urls.py; decided by access.services.decisions (rules: access.policy), which
records the `access.decision` audit event. The request runs on the change-log batch its process read
last (core.cache.versioned.assume_unchanged): the audit insert checks that nothing changed since, in
the same statement, so a steady-state decision is one statement; when something did (FactsChanged),
the log is read, the partner checked again and the decision made again.
"""

from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from access.anomalies import decision_rate_exceeded
from access.errors import DecisionRateExceeded, DeviceNotFound, FactsChanged
from access.reasons import Reason
from access.services.decisions import CREDENTIAL_TYPES, access_decide
from core.api.schema import problems
from core.api.serializers import FieldsBuiltOnceSerializer
from core.cache.versioned import assume_unchanged, refresh
from core.http.client_ip import client_ip
from partners.authentication import IsPartner, PartnerAuthentication, partner_scope_required

_REF = r"^[A-Za-z0-9:._-]{1,64}$"


class UnknownDevice(exceptions.NotFound):
    problem_code = "unknown-device"
    default_detail = gettext_lazy("No such device.")


class AccessDecisionApi(APIView):
    authentication_classes = [PartnerAuthentication]
    permission_classes = [IsPartner, partner_scope_required("access:decide")]

    class InputSerializer(FieldsBuiltOnceSerializer):  # the hot path: fields are stateless validators
        class CredentialSerializer(FieldsBuiltOnceSerializer):
            class Meta:
                ref_name = "AccessDecisionCredential"

            type = serializers.ChoiceField(choices=CREDENTIAL_TYPES)
            token = serializers.RegexField(r"^[A-Za-z0-9_-]{8,128}$", help_text="Plate token or face subject id")

        class Meta:
            ref_name = "AccessDecisionRequest"

        device_ref = serializers.RegexField(_REF)
        credential = CredentialSerializer()
        request_id = serializers.RegexField(_REF)
        observed_at = serializers.DateTimeField()

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "AccessDecision"

        decision = serializers.ChoiceField(choices=["allow", "deny"])
        reason = serializers.ChoiceField(choices=[reason.value for reason in Reason])
        decision_id = serializers.CharField()
        ttl_s = serializers.IntegerField(help_text="How long the partner may cache this decision")

    def initial(self, request, *args, **kwargs):
        assume_unchanged()  # checked by the decision's audit insert (or read, before any refusal)
        super().initial(request, *args, **kwargs)

    @staticmethod
    def refuse(request, error: exceptions.APIException):
        """Malformed input: still counted against the rate limit (decisions count in access_decide)."""
        retry_after = decision_rate_exceeded(partner_id=request.user.partner_id)
        if retry_after is not None:
            raise exceptions.Throttled(wait=retry_after)
        raise error

    @extend_schema(
        request=InputSerializer, operation_id="access_decision_create", tags=["partner"],
        responses={200: OutputSerializer, **problems(
            401, 403, 404, 429,
            s401="No verified client certificate, or no valid token bound to it",
            s403="Address not allowed (`/problems/ip-not-allowed`), partner suspended, or missing scope",
            s404="No such device of yours (`/problems/unknown-device`)",
            s429="More decisions than PARTNER_DECISION_RATE allows; see Retry-After")},
    )
    def post(self, request):
        try:
            body = request.data
        except exceptions.ParseError as error:
            self.refuse(request, error)
        if not isinstance(body, dict):
            self.refuse(request, exceptions.ParseError("The body must be a JSON object."))
        serializer = self.InputSerializer(data=body)
        if not serializer.is_valid():
            self.refuse(request, exceptions.ValidationError(serializer.errors))
        try:
            decision = self.decide(request, serializer.validated_data)
        except FactsChanged:  # since this process last read the log: read it, check the caller again
            refresh()
            request._authenticate()
            self.check_permissions(request)
            decision = self.decide(request, serializer.validated_data, counted=True)
        # the OutputSerializer documents this shape; the values are already plain (no copy on the hot path)
        return Response({"decision": decision.decision, "reason": decision.reason.value,
                         "decision_id": decision.decision_id, "ttl_s": decision.ttl_s})

    @staticmethod
    def decide(request, data: dict, counted: bool = False):
        try:
            return access_decide(
                partner=request.user.partner,
                device_ref=data["device_ref"],
                credential_type=data["credential"]["type"],
                credential_token=data["credential"]["token"],
                request_id=data["request_id"],
                observed_at=data["observed_at"],
                source_ip=client_ip(request._request) or None,
                counted=counted,
            )
        except DeviceNotFound:
            raise UnknownDevice() from None
        except DecisionRateExceeded as exceeded:
            raise exceptions.Throttled(wait=exceeded.retry_after) from None
